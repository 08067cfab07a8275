"""Benchmarks by name: embedded ones (no files) and on-disk ones (torchvision-format files).

Both are built as Avalanche scenarios over :class:`~clgrow.strategies.samples.TensorSamples`, so the strategies'
batch-level data path applies to all of them; the on-disk files are read by
:mod:`clgrow.experiments.ondisk` (no PIL, no per-sample conversion).

Nothing here downloads: on-disk benchmarks check that the expected files exist under
``--data-root`` first and raise :class:`DataMissingError` naming them otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from clgrow.experiments.catalog import (
    _FILES,
    BENCHMARK_NAMES,
    EMBEDDED_BENCHMARKS,
    N_CLASSES,
    DataMissingError,
    _check_split,
    check_benchmark,
    check_data,
    expected_files,
)
from clgrow.experiments.embedded import load_embedded
from clgrow.experiments.ondisk import CIFAR_MEAN, CIFAR_STD, Prepare, read_cifar, read_mnist
from clgrow.strategies.samples import TensorSamples

__all__ = [
    "BenchmarkInfo",
    "BENCHMARKS",
    "EMBEDDED_BENCHMARKS",
    "N_CLASSES",
    "make_benchmark",
    "check_benchmark",
    "DataMissingError",
    "expected_files",
    "cifar_backbone",
]


@dataclass
class BenchmarkInfo:
    """A built benchmark and what a model for it needs to know."""

    name: str
    scenario: Any
    in_features: int
    num_classes: int
    classes_per_experience: int
    task_labels: bool
    backbone: Callable[[], nn.Module] | None = None
    domain_incremental: bool = False

    @property
    def head_size(self) -> int:
        """Outputs of a single head (multi-head models: per task)."""
        return self.classes_per_experience if self.task_labels else self.num_classes


def _embedded(data_name: str) -> Callable[..., BenchmarkInfo]:
    def build(name: str, n_experiences: int, seed: int, task_labels: bool, data_root: Path | None) -> BenchmarkInfo:
        from avalanche.benchmarks import nc_benchmark

        data = load_embedded(data_name)
        n_classes = data.num_classes
        _check_split(name, n_classes, n_experiences)
        scenario = nc_benchmark(
            TensorSamples(data.x_train, data.y_train),
            TensorSamples(data.x_test, data.y_test),
            n_experiences=n_experiences,
            task_labels=task_labels,
            seed=seed,
            class_ids_from_zero_in_each_exp=task_labels,
        )
        return BenchmarkInfo(name, scenario, data.x_train.shape[1], n_classes, n_classes // n_experiences, task_labels)

    return build


def _require(name: str, data_root: Path | None) -> Path:
    root = check_data(name, data_root)
    if root is None:
        raise ValueError(f"{name} is embedded: it has no data root")
    return root


def cifar_backbone() -> nn.Module:
    """A small conv backbone for 32x32 RGB images; 64 x 4 x 4 = 1,024 features."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


def _on_disk(kind: str) -> Callable[..., BenchmarkInfo]:
    def build(name: str, n_experiences: int, seed: int, task_labels: bool, data_root: Path | None) -> BenchmarkInfo:
        root = _require(name, data_root)
        try:
            return _read(name, n_experiences, seed, task_labels, root)
        except DataMissingError:
            raise
        except (OSError, RuntimeError, ValueError, EOFError, IndexError, AssertionError) as err:  # truncated files
            raise DataMissingError(
                f"{name}: the files under data root {root} could not be read ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:160] if str(err) else 'no detail'}); expected intact "
                f"torchvision-format files: {', '.join(_FILES[name])}"
            ) from None

    def _read(name: str, n_experiences: int, seed: int, task_labels: bool, root: Path) -> BenchmarkInfo:
        from avalanche.benchmarks import nc_benchmark

        if kind.startswith("split-cifar"):
            # the files _require has checked: training batches, then the test batch (then meta)
            files = expected_files(name, root)
            key = b"labels" if kind == "split-cifar10" else b"fine_labels"
            x_tr, y_tr = read_cifar(files[:-2], key)
            x_te, y_te = read_cifar(files[-2:-1], key)
            prepare = Prepare(mean=CIFAR_MEAN, std=CIFAR_STD)
        else:
            x_tr, y_tr, x_te, y_te = read_mnist(root / ("FashionMNIST" if kind == "split-fmnist" else "MNIST") / "raw")
            prepare = Prepare()
        if kind == "permuted-mnist":
            # Avalanche's PermutedMNIST draws its permutations the same way
            rng = np.random.RandomState(seed)
            perms = [Prepare(torch.from_numpy(rng.permutation(784)).long()) for _ in range(n_experiences)]
            scenario = nc_benchmark(
                [TensorSamples(x_tr, y_tr, p) for p in perms],
                [TensorSamples(x_te, y_te, p) for p in perms],
                n_experiences=n_experiences,
                task_labels=False,
                shuffle=False,
                class_ids_from_zero_in_each_exp=True,
                one_dataset_per_exp=True,
            )
            return BenchmarkInfo(name, scenario, 784, 10, 10, False, domain_incremental=True)
        n_classes = N_CLASSES[kind]
        _check_split(name, n_classes, n_experiences)
        scenario = nc_benchmark(
            TensorSamples(x_tr, y_tr, prepare),
            TensorSamples(x_te, y_te, prepare),
            n_experiences=n_experiences,
            task_labels=task_labels,
            seed=seed,
            class_ids_from_zero_in_each_exp=task_labels,
        )
        if kind.startswith("split-cifar"):
            return BenchmarkInfo(
                name, scenario, 1024, n_classes, n_classes // n_experiences, task_labels, backbone=cifar_backbone
            )
        return BenchmarkInfo(name, scenario, 784, n_classes, n_classes // n_experiences, task_labels)

    return build


BENCHMARKS: dict[str, Callable[..., BenchmarkInfo]] = {
    "split-digits": _embedded("digits"),
    "split-mnist-5k": _embedded("mnist-5k"),
    "split-mnist1d": _embedded("mnist1d"),
    "split-mnist-aug": _embedded("mnist-aug"),
    "split-mnist": _on_disk("split-mnist"),
    "permuted-mnist": _on_disk("permuted-mnist"),
    "split-fmnist": _on_disk("split-fmnist"),
    "split-cifar10": _on_disk("split-cifar10"),
    "split-cifar100": _on_disk("split-cifar100"),
}

if tuple(BENCHMARKS) != BENCHMARK_NAMES:  # the catalog is what the command line validates with
    raise ImportError(f"clgrow.experiments.catalog.BENCHMARK_NAMES {BENCHMARK_NAMES} != {tuple(BENCHMARKS)}")


def make_benchmark(
    name: str, n_experiences: int = 5, seed: int = 0, task_labels: bool = False, data_root: str | Path | None = None
) -> BenchmarkInfo:
    """Build a benchmark by name (see ``BENCHMARKS``)."""
    check_benchmark(name, n_experiences, task_labels)
    root = None if data_root is None else Path(data_root)
    return BENCHMARKS[name](name, n_experiences, seed, task_labels, root)
