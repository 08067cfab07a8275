"""Benchmarks: embedded splits, and on-disk ones read from --data-root without downloading."""

from __future__ import annotations

import struct

import numpy as np
import pytest

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
    assert tuple(x.shape) == (1, 28, 28)


def test_permuted_mnist_is_domain_incremental(tmp_path):
    _fake_mnist(tmp_path, "MNIST")
    bm = make_benchmark("permuted-mnist", 3, seed=0, data_root=tmp_path)
    assert bm.domain_incremental and bm.num_classes == 10
    assert all(len(e.dataset) == 100 for e in bm.scenario.train_stream)
    with pytest.raises(ValueError, match="domain-incremental"):
        make_benchmark("permuted-mnist", 3, task_labels=True, data_root=tmp_path)


def test_incomplete_data_root_names_missing_files(tmp_path):
    _fake_mnist(tmp_path, "MNIST")
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataMissingError, match="t10k-labels-idx1-ubyte"):
        make_benchmark("split-mnist", 5, data_root=tmp_path)
    with pytest.raises(DataMissingError, match="cifar-100-python/train"):
        make_benchmark("split-cifar100", 10, data_root=tmp_path)


@pytest.mark.parametrize("name,features", [("split-digits", 64), ("split-mnist-5k", 784), ("split-mnist1d", 40)])
def test_embedded_benchmarks(name, features):
    bm = make_benchmark(name, 5, seed=1)
    stream = bm.scenario.train_stream
    classes = [set(e.classes_in_this_experience) for e in stream]
    assert bm.in_features == features and len(stream) == 5
    assert set().union(*classes) == set(range(10)) and all(len(c) == 2 for c in classes)
    assert make_benchmark(name, 5, seed=1).scenario.train_stream[0].classes_in_this_experience == \
        stream[0].classes_in_this_experience
    tasks = make_benchmark(name, 5, seed=1, task_labels=True)
    assert [e.task_labels for e in tasks.scenario.train_stream] == [[i] for i in range(5)]
    assert tasks.head_size == 2
