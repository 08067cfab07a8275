"""Benchmark names and what can be checked about them without loading anything (no torch).

The command line validates ``--benchmark``, ``--experiences`` and ``--data-root`` with these
before it imports torch or Avalanche; :mod:`clgrow.experiments.benchmarks` builds them.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BENCHMARK_NAMES", "EMBEDDED_BENCHMARKS", "N_CLASSES", "DataMissingError", "expected_files",
           "check_benchmark", "check_data"]

#: Every benchmark ``make_benchmark`` builds, embedded ones first.
BENCHMARK_NAMES = ("split-digits", "split-mnist-5k", "split-mnist1d", "split-mnist", "permuted-mnist", "split-fmnist",
                   "split-cifar10", "split-cifar100")

EMBEDDED_BENCHMARKS = ("split-digits", "split-mnist-5k", "split-mnist1d")


class DataMissingError(FileNotFoundError):
    """The files of an on-disk benchmark are not where they are expected."""


def _check_split(name: str, n_classes: int, n_experiences: int) -> None:
    if n_experiences < 1 or n_classes % n_experiences:
        raise ValueError(
            f"{name}: {n_classes} classes cannot be split evenly into {n_experiences} experiences "
            f"(use one of {[d for d in range(1, n_classes + 1) if n_classes % d == 0]})"
        )


_MNIST_RAW = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]

#: Files per on-disk benchmark; CIFAR lists its training batches, then the test batch, then meta
#: (the reader takes them in that order).
_FILES = {
    "split-mnist": [f"MNIST/raw/{f}" for f in _MNIST_RAW],
    "permuted-mnist": [f"MNIST/raw/{f}" for f in _MNIST_RAW],
    "split-fmnist": [f"FashionMNIST/raw/{f}" for f in _MNIST_RAW],
    "split-cifar10": [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)]
    + ["cifar-10-batches-py/test_batch", "cifar-10-batches-py/batches.meta"],
    "split-cifar100": ["cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta"],
}


def expected_files(name: str, data_root: Path) -> list[Path]:
    """Files an on-disk benchmark reads under ``data_root``."""
    return [data_root / f for f in _FILES[name]]


#: Classes of each class-split benchmark (permuted-mnist keeps all ten in every experience).
N_CLASSES = {"split-digits": 10, "split-mnist-5k": 10, "split-mnist1d": 10, "split-mnist": 10, "split-fmnist": 10,
             "split-cifar10": 10, "split-cifar100": 100}


def check_benchmark(name: str, n_experiences: int, task_labels: bool = False) -> None:
    """Refuse a benchmark setting that cannot be built, without loading any data."""
    if name not in BENCHMARK_NAMES:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARK_NAMES)}")
    if task_labels and name == "permuted-mnist":
        raise ValueError("permuted-mnist is domain-incremental: task labels are not supported")
    if name in N_CLASSES:
        _check_split(name, N_CLASSES[name], n_experiences)


def check_data(name: str, data_root: str | Path | None) -> Path | None:
    """The data root of an on-disk benchmark, checked to hold its files (``None`` for an embedded
    one); raises :class:`DataMissingError` naming what is missing. Reads nothing."""
    if name not in _FILES:
        return None
    if data_root is None:
        raise DataMissingError(f"{name} reads its data from disk: pass --data-root DIR, where DIR holds "
                               + ", ".join(_FILES[name]))
    root = Path(data_root).expanduser()
    missing = [str(p) for p in expected_files(name, root) if not p.is_file()]
    if missing:
        raise DataMissingError(f"{name}: missing under data root {root}: {', '.join(missing)} "
                               "(clgrow never downloads; copy the torchvision-format files there)")
    return root
