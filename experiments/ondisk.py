"""Readers for the on-disk benchmark files, straight into tensors (no PIL, no torchvision datasets).

* MNIST and Fashion-MNIST: the four idx files torchvision keeps under ``<root>/MNIST/raw`` and
  ``<root>/FashionMNIST/raw``; images stay uint8 (N, 784) and are scaled to [0, 1] per batch.
* CIFAR-10/100: the pickled batches of ``cifar-10-batches-py`` and ``cifar-100-python``; images
  stay uint8 (N, 3, 32, 32) and are scaled and normalised per batch. No augmentation (Avalanche's
  defaults add random crops and flips on CIFAR; this reader gives every run the same inputs).

Every malformed file raises :class:`ValueError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["read_idx", "read_mnist", "read_cifar", "Prepare"]

_IDX_TYPES = {0x08: np.uint8}
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def read_idx(path: Path) -> np.ndarray:
    """An idx file (the MNIST format) as an array of its declared shape."""
    raw = Path(path).read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an idx file of unsigned bytes (magic {raw[:4].hex() or 'missing'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated idx header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    need = int(np.prod(shape)) if shape else 0
    if len(raw) - header != need:
        raise ValueError(
            f"{path}: idx header declares shape {shape} ({need} bytes) but the file holds "
            f"{len(raw) - header} bytes after the header"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_mnist(raw_dir: Path) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x_train, y_train, x_test, y_test)``: uint8 images (N, 784), int64 labels."""
    out = []
    for split in ("train", "t10k"):
        image_file, label_file = raw_dir / f"{split}-images-idx3-ubyte", raw_dir / f"{split}-labels-idx1-ubyte"
        images, labels = read_idx(image_file), read_idx(label_file)
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(f"{image_file}: expected 28x28 images, got shape {images.shape}")
        if len(images) == 0:
            raise ValueError(f"{image_file}: holds no images (its header declares 0)")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"{label_file}: {labels.shape} labels for {len(images)} images")
        if labels.size and labels.max() > 9:
            raise ValueError(f"{label_file}: label {int(labels.max())} outside 0..9")
        out += [torch.from_numpy(images.reshape(len(images), 784).copy()), torch.from_numpy(labels.astype(np.int64))]
    return out[0], out[1], out[2], out[3]


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        try:
            d = pickle.load(f, encoding="bytes")
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
            raise ValueError(f"{path}: not a CIFAR python batch ({type(err).__name__})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path}: not a CIFAR python batch (holds a {type(d).__name__})")
    return d


def read_cifar(files: list[Path], label_key: bytes) -> tuple[Tensor, Tensor]:
    """Images uint8 (N, 3, 32, 32) and int64 labels from CIFAR's pickled batches."""
    xs, ys = [], []
    for path in files:
        d = _unpickle(path)
        if b"data" not in d or label_key not in d:
            raise ValueError(f"{path}: a CIFAR batch needs keys 'data' and {label_key.decode()!r}")
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[label_key], dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
            raise ValueError(f"{path}: expected N x 3072 images and N labels, got {data.shape} and {labels.shape}")
        if len(data) == 0:
            raise ValueError(f"{path}: holds no images")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(labels)
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


class Prepare:
    """uint8 batch -> float32: scaled to [0, 1], optionally permuted (flat inputs) and normalised per channel.

    A class rather than a closure so that strategies holding the data sets can be pickled
    (Avalanche's checkpoints).
    """

    def __init__(
        self,
        permutation: Tensor | None = None,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
    ) -> None:
        self.permutation = permutation
        self.mean = None if mean is None else torch.tensor(mean).view(1, -1, 1, 1)
        self.std = None if std is None else torch.tensor(std).view(1, -1, 1, 1)

    def __call__(self, x: Tensor) -> Tensor:
        if self.permutation is not None:
            x = x.index_select(1, self.permutation)  # x[:, perm], without advanced indexing's cost
        x = x.float().div_(255)
        if self.mean is not None and self.std is not None:
            x = x.sub_(self.mean).div_(self.std)
        return x
