"""clgrow's own models: plain ``nn.Module``s of standard layers, grown like any other.

Each builder returns an ordinary module (an ``nn.Sequential``, or a small ResNet whose blocks add
their shortcut), traced once on a zero input so that its growth sites are known before any data
is seen (:func:`clgrow.sites.as_growable` needs no example for it). Nothing about them is special
to growth: they train, save and load as the layers they are made of.

``widths`` everywhere means the growth sites' widths in the order the trace lists them
(``as_growable(model).hidden_sizes``): what a grown model's final widths are, and what a model of
the same shape is rebuilt from.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal, TypeVar

import torch
from torch import Tensor, nn

from clgrow.discovery import FIXED

__all__ = ["mlp", "cnn", "resnet", "Images", "BasicBlock", "ResNet", "POOL", "site_order"]

#: The pooling marker in a :func:`cnn` channel list (a 2×2 max-pool after the convolution).
POOL = "M"


def _whole(v: object, least: int = 1) -> bool:
    """An integer (numpy's included) ``>= least``: never a bool, str or float."""
    return not isinstance(v, bool) and hasattr(v, "__index__") and int(v) >= least


def _widths(name: str, values: object, least: int = 1, allow_empty: bool = False) -> list[int]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name} must be a list of integer widths >= {least}, got {values!r}")
    out = list(values)  # type: ignore[call-overload,unused-ignore]
    if (not out and not allow_empty) or any(not _whole(v, least) for v in out):
        raise ValueError(
            f"{name} must be a {'' if allow_empty else 'non-empty '}list of integer widths >= {least}, got {out!r}"
        )
    return [int(v) for v in out]


def _check_classes(num_classes: int | None) -> None:
    if num_classes is not None and not _whole(num_classes):
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")


def _check_dropout(dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


class Images(nn.Module):
    """Rows of ``C·H·W`` values seen as images ``(C, H, W)``; images pass unchanged."""

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        dims = list(shape) if hasattr(shape, "__iter__") else []
        if len(dims) != 3 or not all(_whole(s) for s in dims):
            raise ValueError(f"in_shape must be (channels, height, width) of integers >= 1, got {shape!r}")
        self.shape = (int(dims[0]), int(dims[1]), int(dims[2]))

    def forward(self, x: Tensor) -> Tensor:
        if x[0].numel() != self.shape[0] * self.shape[1] * self.shape[2] or x.dim() not in (2, 4):
            raise ValueError(
                f"expects inputs of shape (batch, {', '.join(map(str, self.shape))}) or "
                f"(batch, {self.shape[0] * self.shape[1] * self.shape[2]}), got {tuple(x.shape)}"
            )
        return x.reshape(x.shape[0], *self.shape)


_M = TypeVar("_M", bound=nn.Module)


def _traced(model: _M, example: Tensor) -> _M:
    """``model`` with its growth sites found on ``example`` (kept on the module)."""
    from clgrow.sites import as_growable

    as_growable(model, example)
    return model


def _hidden(widths: Sequence[int], dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return layers


def mlp(
    in_features: int,
    hidden_sizes: Sequence[int],
    num_classes: int | None,
    *,
    backbone: nn.Module | None = None,
    dropout: float = 0.0,
    example: Tensor | None = None,
) -> nn.Sequential:
    """A ReLU MLP: ``Flatten → (Linear → ReLU → Dropout?)* → Linear``.

    Parameters
    ----------
    in_features : int
        Values per flattened input (or per flattened backbone output).
    hidden_sizes : sequence of int
        Width of each hidden layer, first to last (each is a growth site).
    num_classes : int or None
        Outputs of the head; ``None`` leaves the head off (a trunk for task heads).
    backbone : nn.Module, optional
        A feature extractor run first; it trains but never grows.
    dropout : float
        Dropout after every hidden ReLU.
    example : Tensor, optional
        An input batch to trace the sites on (default: zeros of ``(2, in_features)``; a model
        with a backbone needs one of the backbone's input shape).
    """
    if not _whole(in_features):
        raise ValueError(f"in_features must be an integer >= 1, got {in_features!r}")
    sizes = _widths("hidden_sizes", hidden_sizes)
    _check_classes(num_classes)
    _check_dropout(dropout)
    widths = [int(in_features), *sizes]
    layers: list[nn.Module] = ([backbone] if backbone is not None else []) + [nn.Flatten()]
    layers += _hidden(widths, dropout)
    if num_classes is not None:
        layers.append(nn.Linear(widths[-1], int(num_classes)))
    model = nn.Sequential(*layers)
    if backbone is not None:
        setattr(model, FIXED, ("0",))
    if example is None and backbone is not None:
        return model  # traced when the example is known (the caller's, or as_growable's at growth)
    x = example if example is not None else torch.zeros(2, int(in_features))
    return _traced(model, x) if num_classes is not None else model


def cnn(
    in_shape: Sequence[int],
    channels: Sequence[int | str],
    hidden_sizes: Sequence[int],
    num_classes: int | None,
    *,
    batch_norm: bool = True,
    kernel_size: int = 3,
    readout: Literal["flatten", "pool"] = "flatten",
    dropout: float = 0.0,
) -> nn.Sequential:
    """A VGG-style network: convolution stages, then a ReLU MLP; every layer grows.

    Each convolution is ``Conv2d(kernel_size, same padding)`` → ``BatchNorm2d`` (optional) → ReLU
    → a 2×2 max-pool where the channel list says :data:`POOL` (``"M"``). The last feature map is
    flattened (channel-major) or globally average-pooled, then ``Linear`` + ReLU layers and a head.
    Flat inputs of ``C·H·W`` values are accepted (:class:`Images`).

    Parameters
    ----------
    in_shape : (C, H, W)
    channels : sequence of int or "M"
        Output channels of each convolution, ``"M"`` after one that is pooled; e.g. the authors'
        CIFAR-100 net ``[32, 32, "M", 64, 64, "M"]``.
    hidden_sizes : sequence of int
        Widths of the linear layers after the convolutions (may be empty).
    num_classes : int or None
        ``None``: no head (a trunk for task heads).
    batch_norm, kernel_size, readout, dropout
        As described above.
    """
    images = Images(in_shape)
    spec = list(channels) if not isinstance(channels, (str, bytes)) and hasattr(channels, "__iter__") else None
    if not spec or not _whole(spec[0]) or any(c != POOL and not _whole(c) for c in spec):
        raise ValueError(f"channels must list convolution widths >= 1 (with {POOL!r} for pooling), got {channels!r}")
    if any(a == POOL and b == POOL for a, b in itertools.pairwise(spec)):
        raise ValueError(f"channels: one {POOL!r} per convolution at most, got {channels!r}")
    sizes = _widths("hidden_sizes", hidden_sizes, allow_empty=True)
    _check_classes(num_classes)
    if not _whole(kernel_size) or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd integer >= 1, got {kernel_size!r}")
    if readout not in ("flatten", "pool"):
        raise ValueError(f"readout must be 'flatten' or 'pool', got {readout!r}")
    _check_dropout(dropout)
    c, height, width = images.shape
    layers: list[nn.Module] = [images]
    for item in spec:
        if item == POOL:
            height, width = height // 2, width // 2
            if height < 1 or width < 1:
                raise ValueError(f"channels {channels!r}: pooling shrinks a {images.shape} input to nothing")
            layers.append(nn.MaxPool2d(2))
            continue
        layers.append(nn.Conv2d(c, int(item), kernel_size, padding=kernel_size // 2))
        if batch_norm:
            layers.append(nn.BatchNorm2d(int(item)))
        layers.append(nn.ReLU())
        c = int(item)
    if readout == "pool":
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        features = c
    else:
        layers.append(nn.Flatten())
        features = c * height * width
    widths = [features, *sizes]
    layers += _hidden(widths, dropout)
    if num_classes is not None:
        layers.append(nn.Linear(widths[-1], int(num_classes)))
    model = nn.Sequential(*layers)
    return _traced(model, torch.zeros(2, *images.shape)) if num_classes is not None else model


class BasicBlock(nn.Module):
    """A basic residual block: ``conv1 → bn1 → ReLU → conv2 → bn2``, plus the shortcut (the
    identity, or a strided 1×1 projection with batch norm), then ReLU. Its inner channels are one
    growth site; the stream it adds to is another, shared with every block of its stage."""

    def __init__(self, c_in: int, inner: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, inner, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class ResNet(nn.Module):
    """A ResNet of basic blocks for small images: a 3×3 stem, stages of :class:`BasicBlock` (stride
    2 from the second stage), global average pooling and a head (none for a trunk)."""

    def __init__(
        self, in_shape: Sequence[int], stages: Sequence[Sequence[int]], streams: Sequence[int], num_classes: int | None
    ) -> None:
        super().__init__()
        self.images = Images(in_shape)
        c = streams[0]
        self.stem = nn.Sequential(nn.Conv2d(self.images.shape[0], c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        blocks: list[nn.Module] = []
        for s, (inner, width) in enumerate(zip(stages, streams)):
            for b, w in enumerate(inner):
                blocks.append(BasicBlock(c, w, width, 2 if s > 0 and b == 0 else 1))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c, num_classes) if num_classes is not None else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.pool(self.blocks(self.stem(self.images(x))))
        return h if self.head is None else self.head(h)


def resnet(
    in_shape: Sequence[int],
    num_classes: int | None,
    *,
    nf: int = 20,
    blocks: Sequence[int] = (2, 2, 2, 2),
    widths: Sequence[int] | None = None,
) -> ResNet:
    """A ResNet-18-shaped network whose residual streams and blocks' inner channels grow.

    Stages of ``blocks`` basic blocks at widths ``nf, 2nf, 4nf, 8nf``; with ``nf=20`` the size of
    Avalanche's ``SlimResNet18``. Its sites, in the order the trace lists them, are each stage's
    stream (the stem or the first block's projection, every block's ``conv2`` and ``bn2``, read by
    the next blocks, projections and the head) and each block's inner channels.

    Parameters
    ----------
    in_shape : (C, H, W)
    num_classes : int or None
        ``None``: no head (a trunk for task heads).
    nf : int
        Width of the first stage.
    blocks : sequence of int
        Blocks per stage.
    widths : sequence of int, optional
        Every site's width in site order (what a grown model's widths are rebuilt from).
    """
    if not _whole(nf):
        raise ValueError(f"nf must be an integer >= 1, got {nf!r}")
    _check_classes(num_classes)
    counts = _widths("blocks", blocks)
    streams = [nf * 2**s for s in range(len(counts))]
    inner = [[w] * n for w, n in zip(streams, counts)]
    if widths is not None:
        order = site_order(counts)
        sizes = _widths("widths", widths)
        if len(sizes) != len(order):
            raise ValueError(f"widths must give {len(order)} site widths (site order), got {len(sizes)}")
        for (kind, stage, block), size in zip(order, sizes):
            if kind == "stream":
                streams[stage] = size
            else:
                inner[stage][block] = size
    model = ResNet(in_shape, inner, streams, num_classes)
    return _traced(model, torch.zeros(2, *model.images.shape)) if num_classes is not None else model


def site_order(blocks: Sequence[int]) -> list[tuple[str, int, int]]:
    """The sites of a :func:`resnet` with ``blocks`` per stage, in the order the trace finds them:
    ``("stream", stage, 0)`` or ``("inner", stage, block)``. A stage's stream starts at the stem
    (the first stage) or at its first block's second convolution, which runs after that block's
    first (its inner channels)."""
    order: list[tuple[str, int, int]] = []
    for s, n in enumerate(blocks):
        own = [("inner", s, b) for b in range(n)]
        order += [("stream", s, 0), *own] if s == 0 else [own[0], ("stream", s, 0), *own[1:]]
    return order
