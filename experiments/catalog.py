"""Benchmark names and what can be checked about them without loading anything (no torch).

The command line validates ``--benchmark``, ``--experiences`` and ``--data-root`` with these
before it imports torch or Avalanche; :mod:`clgrow.experiments.benchmarks` builds them.
"""

from __future__ import annotations

import itertools
from pathlib import Path

__all__ = [
    "BENCHMARK_NAMES",
    "EMBEDDED_BENCHMARKS",
    "N_CLASSES",
    "DataMissingError",
    "expected_files",
    "check_benchmark",
    "check_data",
    "MODEL_INPUTS",
    "IMAGE_SHAPES",
    "SAMPLE_VALUES",
    "estimate_run_bytes",
    "physical_memory",
]

#: Every benchmark ``make_benchmark`` builds, embedded ones first.
BENCHMARK_NAMES = (
    "split-digits",
    "split-mnist-5k",
    "split-mnist1d",
    "split-mnist-aug",
    "split-mnist",
    "permuted-mnist",
    "split-fmnist",
    "split-cifar10",
    "split-cifar100",
)

EMBEDDED_BENCHMARKS = ("split-digits", "split-mnist-5k", "split-mnist1d", "split-mnist-aug")


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
N_CLASSES = {
    "split-digits": 10,
    "split-mnist-5k": 10,
    "split-mnist1d": 10,
    "split-mnist-aug": 10,
    "split-mnist": 10,
    "split-fmnist": 10,
    "split-cifar10": 10,
    "split-cifar100": 100,
}


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
        raise DataMissingError(
            f"{name} reads its data from disk: pass --data-root DIR, where DIR holds " + ", ".join(_FILES[name])
        )
    root = Path(data_root).expanduser()
    missing = [str(p) for p in expected_files(name, root) if not p.is_file()]
    if missing:
        raise DataMissingError(
            f"{name}: missing under data root {root}: {', '.join(missing)} "
            "(clgrow never downloads; copy the torchvision-format files there)"
        )
    return root


#: Benchmarks the shared training defaults serve badly, with the epochs that learn them (measured:
#: split-digits' 1,437 8x8 images reach 34-60 % at 3 epochs, 94 % at 20).
SUGGESTED_EPOCHS = {"split-digits": 20}

#: Features the growable MLP reads (after the conv backbone for CIFAR) and values per stored sample.
MODEL_INPUTS = {
    "split-digits": 64,
    "split-mnist-5k": 784,
    "split-mnist1d": 40,
    "split-mnist-aug": 784,
    "split-mnist": 784,
    "permuted-mnist": 784,
    "split-fmnist": 784,
    "split-cifar10": 1024,
    "split-cifar100": 1024,
}
#: Image shape ``(C, H, W)`` of each benchmark's samples (a convolutional model reshapes the flat
#: rows to it); MNIST-1D's signals are not images.
IMAGE_SHAPES = {
    "split-digits": (1, 8, 8),
    "split-mnist-5k": (1, 28, 28),
    "split-mnist-aug": (1, 28, 28),
    "split-mnist": (1, 28, 28),
    "permuted-mnist": (1, 28, 28),
    "split-fmnist": (1, 28, 28),
    "split-cifar10": (3, 32, 32),
    "split-cifar100": (3, 32, 32),
}
SAMPLE_VALUES = {**MODEL_INPUTS, "split-cifar10": 3072, "split-cifar100": 3072}
#: A sample's shape as the run feeds it: flat rows, but CIFAR's images as images.
SAMPLE_SHAPES = {b: IMAGE_SHAPES[b] if b.startswith("split-cifar") else (MODEL_INPUTS[b],) for b in MODEL_INPUTS}
#: Bytes per parameter a run holds: the value, its gradient and Adam's two moments (float32), times
#: two for the copies a growth step makes (SVoD's candidate copy, the rollback snapshot).
BYTES_PER_PARAMETER = 32
#: Bytes an experience costs beyond its data (Avalanche's experience, dataset and metric objects;
#: measured order of magnitude, 2026-11-29).
BYTES_PER_EXPERIENCE = 256 * 1024


def estimate_run_bytes(
    benchmark: str,
    hidden_sizes: list[int],
    n_experiences: int,
    units_per_step: int,
    grow_from: int,
    max_hidden_size: int | None,
    probe: int,
) -> tuple[int, str, dict[str, int]]:
    """A lower estimate of what a run holds at its end, how it was counted, and its parts (bytes of
    ``parameters``, of the disruption ``probes`` and of the ``experiences``).

    The growth's units are spread evenly over the hidden layers (an even spread holds the fewest
    parameters for a given number of units, so the estimate is a floor), capped at
    ``max_hidden_size``; the disruption probes keep ``probe`` samples of every experience.
    """
    steps = max(0, n_experiences - grow_from)
    layers = len(hidden_sizes)
    added = units_per_step * steps
    widths = [h + added // layers for h in hidden_sizes]
    if max_hidden_size is not None:
        widths = [min(max(w, h), max(max_hidden_size, h)) for w, h in zip(widths, hidden_sizes)]
    classes = N_CLASSES.get(benchmark, 10)
    dims = [MODEL_INPUTS.get(benchmark, 784)] + widths + [classes]
    params = sum(a * b + b for a, b in itertools.pairwise(dims))
    probes = n_experiences * probe * SAMPLE_VALUES.get(benchmark, 784) * 4 if steps else 0
    parts = {
        "parameters": params * BYTES_PER_PARAMETER,
        "probes": probes,
        "experiences": n_experiences * BYTES_PER_EXPERIENCE,
    }
    how = (
        f"final widths about {widths} ({params:,} parameters x {BYTES_PER_PARAMETER} bytes), "
        f"{n_experiences:,} experiences" + (f", {probes / 2**30:,.1f} GiB of disruption probes" if probes else "")
    )
    return sum(parts.values()), how, parts


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (``None`` where the system does not say)."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None
