"""Channels of a convolutional layer, added and measured the way hidden units are (pure PyTorch).

The building blocks of convolutional growth sites (DESIGN.md, "Convolutional sites"):
a producer ``Conv2d`` (rows = output channels; a row is the flattened filter of ``m = c_in·kh·kw``
entries), optionally followed by ``BatchNorm2d``, whose ReLU output is read by consumers:

* a ``Conv2d`` (channel ``i`` is its input slice ``V[:, i, :, :]``);
* a ``Linear`` after ``Flatten`` (channel ``i`` owns the ``H·W`` consecutive columns
  ``i·H·W … (i+1)·H·W − 1``: channel-major flattening);
* a ``Linear`` after global average pooling (one column per channel).

:func:`add_channels` appends ``k`` channels so that the network's function is unchanged exactly:
new filters (the layer's own initialisation unless given), zero consumer slices, and new
batch-norm channels with weight 1, bias 0, running mean 0 and running variance 1, whose output
only ever meets those zero slices. New channels come last, so every consumer's new entries are its
trailing block, as growth of a ``Linear`` appends trailing columns. :func:`channel_activity`
reduces post-ReLU feature maps to one value per channel and sample (the mean of ``|h|`` over
positions), which is what the inactivity metrics need: a channel is dead when it is zero at every
position of every sample, and its τ-dormancy score is that mean relative to its layer's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from clgrow.errors import GrowthError

__all__ = [
    "ChannelConsumer",
    "add_channels",
    "check_out_weights",
    "widen_norm",
    "widen_consumers",
    "conv_default_init",
    "channel_activity",
]


@dataclass(frozen=True)
class ChannelConsumer:
    """A layer that reads a producer's channels.

    Attributes
    ----------
    module : nn.Conv2d or nn.Linear
    kind : {"conv", "flatten", "pool"}
        How it reads them: as input channels, as ``block`` flattened columns each, or as one
        pooled column each.
    block : int
        Columns per channel (``H·W`` of the feature map for ``flatten``; 1 otherwise).
    """

    module: nn.Conv2d | nn.Linear
    kind: Literal["conv", "flatten", "pool"]
    block: int = 1


def conv_default_init(k: int, conv: nn.Conv2d) -> tuple[Tensor, Tensor]:
    """``k`` filters ``(k, c_in, kh, kw)`` and biases ``(k,)`` drawn as ``nn.Conv2d`` draws its own
    (Kaiming-uniform with ``a = √5``: bound ``1/√fan_in`` for both)."""
    c_in, kh, kw = conv.weight.shape[1:]
    fan_in = c_in * kh * kw
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    w = torch.empty(k, c_in, kh, kw).uniform_(-bound, bound)
    b = torch.empty(k).uniform_(-bound, bound)
    return w, b


def _param(old: Tensor, value: Tensor) -> nn.Parameter:
    """``value`` as a new parameter with ``old``'s ``requires_grad``."""
    return nn.Parameter(value.detach().clone(), requires_grad=old.requires_grad)


@torch.no_grad()
def add_channels(
    conv: nn.Conv2d,
    k: int,
    consumers: list[ChannelConsumer],
    norm: nn.BatchNorm2d | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    out_weight: list[Tensor | None] | None = None,
) -> Tensor:
    """Append ``k`` output channels to ``conv`` (and ``norm``), with zero slices in every consumer.

    Parameters
    ----------
    conv : nn.Conv2d
        The producer (groups of 1).
    k : int
        Channels to add (``>= 0``).
    consumers : list of ChannelConsumer
        Every layer that reads ``conv``'s (normalised, ReLU'd, possibly pooled) output.
    norm : nn.BatchNorm2d, optional
        The batch norm between ``conv`` and its ReLU.
    weight : Tensor, shape ``(k, c_in, kh, kw)`` or ``(k, c_in·kh·kw)``, optional
        The new filters (default: ``conv``'s own initialisation); rows of the flattened form are
        accepted, as extenders write rows.
    bias : Tensor, shape ``(k,)``, optional
    out_weight : list of Tensor or None, one per consumer, optional
        The consumers' new slices as unit views ``(p, k, r)`` (``r`` = ``kh·kw``, ``block`` or 1;
        see :func:`clgrow.model.unit_view`); ``None`` (the default, or an entry) means zeros,
        which keeps the network's function exactly.

    Returns
    -------
    Tensor, shape ``(k,)``
        Indices of the new channels.
    """
    if conv.groups != 1:
        raise GrowthError(f"channels can be added to a convolution of one group only, got groups={conv.groups}")
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise GrowthError(f"k must be an integer >= 0, got {k!r}")
    n, c_in, kh, kw = conv.weight.shape
    ref = conv.weight
    if weight is None or bias is None:
        w0, b0 = conv_default_init(k, conv)
        weight = w0 if weight is None else weight
        bias = b0 if bias is None else bias
    weight = weight.reshape(k, c_in, kh, kw) if weight.numel() == k * c_in * kh * kw else weight
    if weight.shape != (k, c_in, kh, kw):
        raise GrowthError(f"new filters must have shape ({k}, {c_in}, {kh}, {kw}), got {tuple(weight.shape)}")
    if bias.shape != (k,):
        raise GrowthError(f"new biases must have shape ({k},), got {tuple(bias.shape)}")
    if norm is not None and norm.num_features != n:
        raise GrowthError(f"the batch norm has {norm.num_features} channels, the convolution {n}")
    outs: list[Tensor | None] = [None] * len(consumers) if out_weight is None else list(out_weight)
    check_out_weights(consumers, n, k, outs)
    if k == 0:
        return torch.empty(0, dtype=torch.long, device=ref.device)
    conv.weight = _param(conv.weight, torch.cat([ref, weight.to(ref)]))
    if conv.bias is not None:
        conv.bias = _param(conv.bias, torch.cat([conv.bias, bias.to(ref)]))
    conv.out_channels = n + k
    if norm is not None:
        widen_norm(norm, k)
    widen_consumers(consumers, n, k, outs)
    return torch.arange(n, n + k, device=ref.device)


def check_out_weights(consumers: list[ChannelConsumer], n: int, k: int, outs: list[Tensor | None]) -> None:
    """Refuse, before anything changes, consumers that do not read ``n`` units and new slices
    that are not unit views ``(p, k, r)`` of them (``None``: zeros)."""
    if len(outs) != len(consumers):
        raise GrowthError(f"{len(consumers)} consumers, got {len(outs)} outgoing weights")
    for c, out in zip(consumers, outs):
        width = c.module.weight.shape[1]
        if width != n * c.block:
            raise GrowthError(f"a {c.kind} consumer reads {width} inputs, not {n} channels x {c.block}")
        r = c.module.weight[0, 0].numel() if c.kind == "conv" else c.block
        if out is not None and out.numel() != c.module.weight.shape[0] * k * r:
            raise GrowthError(
                f"new outgoing weights of a {c.kind} consumer must have shape "
                f"({c.module.weight.shape[0]}, {k}, {r}), got {tuple(out.shape)}"
            )


@torch.no_grad()
def widen_norm(norm: nn.modules.batchnorm._BatchNorm, k: int) -> None:
    """``k`` new batch-norm channels: weight 1, bias 0, running mean 0 and variance 1."""
    if norm.weight is not None and norm.bias is not None:
        norm.weight = _param(norm.weight, torch.cat([norm.weight, norm.weight.new_ones(k)]))
        norm.bias = _param(norm.bias, torch.cat([norm.bias, norm.bias.new_zeros(k)]))
    if norm.running_mean is not None and norm.running_var is not None:
        norm.running_mean = torch.cat([norm.running_mean, norm.running_mean.new_zeros(k)])
        norm.running_var = torch.cat([norm.running_var, norm.running_var.new_ones(k)])
    norm.num_features = norm.num_features + k


@torch.no_grad()
def widen_consumers(consumers: list[ChannelConsumer], n: int, k: int, outs: list[Tensor | None]) -> None:
    """Append every consumer's slices for ``k`` new units after its ``n`` (checked by
    :func:`check_out_weights`): a conv's input channels, a ``Linear``'s ``block`` columns each
    (channel-major: new units last, their columns too); ``None`` writes zeros."""
    for c, out in zip(consumers, outs):
        cw = c.module.weight
        if c.kind == "conv":
            assert isinstance(c.module, nn.Conv2d)
            shape = (cw.shape[0], k, *cw.shape[2:])
            extra = cw.new_zeros(shape) if out is None else out.reshape(shape).to(cw)
            c.module.weight = _param(cw, torch.cat([cw, extra], 1))
            c.module.in_channels = n + k
        else:
            assert isinstance(c.module, nn.Linear)
            shape2 = (cw.shape[0], k * c.block)
            extra = cw.new_zeros(shape2) if out is None else out.reshape(shape2).to(cw)
            c.module.weight = _param(cw, torch.cat([cw, extra], 1))
            c.module.in_features = cw.shape[1] + k * c.block


def channel_activity(h: Tensor) -> Tensor:
    """Mean of ``|h|`` over positions: ``(batch, C, H, W)`` -> ``(batch, C)`` (a ``(batch, n)``
    input is returned as it is). On post-ReLU maps it is 0 exactly when the channel is zero at
    every position, so dead and τ-dormant channels follow from it as units do."""
    if h.dim() == 2:
        return h
    if h.dim() != 4:
        raise ValueError(f"expected (batch, n) or (batch, C, H, W) activations, got shape {tuple(h.shape)}")
    return h.abs().mean(dim=(2, 3))
