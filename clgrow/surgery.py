"""Surgery on one layer, by kind: units appended, kept, re-initialised. One table, no ``if`` per kind.

A growth site's units live in three kinds of layer (DESIGN.md, "Convolutional sites"):

* a **producer** (``Linear``, ``Conv1d/2d/3d`` of one group) owns them as output rows: a unit is a
  row of the weight, ``m = c_in·∏kernel`` entries, and a bias;
* a **norm** (batch norm) owns them as channels: weight, bias, running mean and variance;
* a **consumer** (a producer of the next layer) reads them as input columns: ``r`` entries per
  unit in each output row (1, a kernel's taps, or a flattened channel's ``H·W`` columns).

Every layer kind says which of its tensors run along its units (dimension 0 of each "out"
tensor, dimension 1 of its weight as a reader) and what a new unit starts as; the operations
below are written once for all kinds. A new kind of layer is one :class:`LayerKind` added to
:data:`KINDS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from clgrow.errors import GrowthError

__all__ = [
    "Producer",
    "Norm",
    "LayerKind",
    "KINDS",
    "kind_of",
    "is_producer",
    "is_norm",
    "weight_of",
    "unit_view",
    "unit_columns",
    "default_init",
    "append_out",
    "append_in",
    "keep_out",
    "keep_in",
    "slice_optimizer_state",
]


#: Layers that compute units from their input (a site's producers and readers).
Producer = nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d
#: Layers that normalise units channel by channel.
Norm = nn.modules.batchnorm._BatchNorm


@dataclass(frozen=True)
class LayerKind:
    """How one kind of layer holds units.

    Attributes
    ----------
    out_size, in_size : str
        Attributes that count its units and the units it reads (``None``: it reads none).
    out_tensors : mapping of name to the value a new unit starts at (``None``: given by the caller)
        Tensors whose dimension 0 runs along its units.
    producer : bool
        Whether it computes units from its input (a site's producer) rather than normalising them.
    """

    out_size: str
    in_size: str | None
    out_tensors: Mapping[str, float | None]
    producer: bool


_PRODUCER = {"weight": None, "bias": None}
_NORM = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}

#: Layer kinds by type (subclasses are found through the MRO).
KINDS: dict[type[nn.Module], LayerKind] = {
    nn.Linear: LayerKind("out_features", "in_features", _PRODUCER, True),
    nn.Conv1d: LayerKind("out_channels", "in_channels", _PRODUCER, True),
    nn.Conv2d: LayerKind("out_channels", "in_channels", _PRODUCER, True),
    nn.Conv3d: LayerKind("out_channels", "in_channels", _PRODUCER, True),
    nn.modules.batchnorm._BatchNorm: LayerKind("num_features", None, _NORM, False),
}


def kind_of(mod: nn.Module) -> LayerKind | None:
    """The :class:`LayerKind` of ``mod`` (``None``: a layer that holds no units)."""
    for cls in type(mod).__mro__:
        if cls in KINDS:
            return KINDS[cls]
    return None


def is_producer(mod: nn.Module) -> bool:
    """Whether ``mod`` computes units (a ``Linear`` or a convolution; grouped ones included)."""
    kind = kind_of(mod)
    return kind is not None and kind.producer


def is_norm(mod: nn.Module) -> bool:
    """Whether ``mod`` normalises units channel by channel (batch norm)."""
    kind = kind_of(mod)
    return kind is not None and not kind.producer


def weight_of(mod: nn.Module) -> Tensor:
    """``mod.weight`` (a layer that holds units has one)."""
    w = getattr(mod, "weight", None)
    if not isinstance(w, Tensor):
        raise GrowthError(f"{type(mod).__name__} has no weight")
    return w


def _kind(mod: nn.Module) -> LayerKind:
    kind = kind_of(mod)
    if kind is None:
        raise GrowthError(f"{type(mod).__name__} holds no units clgrow can add or remove")
    return kind


def unit_view(weight: Tensor, n: int) -> Tensor:
    """A consumer's weight seen per input unit: ``(p, n, r)``, a view sharing its storage.

    ``r`` is what one unit (or channel) owns in the consumer: 1 column of a ``Linear`` (or of one
    after global pooling), the ``H·W`` columns of a ``Linear`` after channel-major ``Flatten``, the
    kernel taps of a convolution. Writing to the view writes the weight.
    """
    return weight.view(weight.shape[0], n, -1)


def unit_columns(units: Tensor, n: int, width: int) -> Tensor:
    """The input columns of a consumer ``width`` wide that ``units`` of an ``n``-unit producer own
    (``width // n`` consecutive ones each)."""
    r = width // n
    if r == 1:
        return units
    return (units[:, None] * r + torch.arange(r, device=units.device)).flatten()


def default_init(k: int, fan_in: int) -> tuple[Tensor, Tensor]:
    """``k`` rows ``(k, fan_in)`` and biases ``(k,)`` as ``nn.Linear`` and ``nn.Conv*`` draw theirs
    (uniform in ``±1/sqrt(fan_in)``; a filter is a row of ``fan_in = c_in·∏kernel`` entries)."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    weight = torch.empty(k, fan_in).uniform_(-bound, bound)
    bias = torch.empty(k).uniform_(-bound, bound)
    return weight, bias


def _param(old: Tensor, value: Tensor) -> Tensor:
    """``value`` as ``old`` was held: a parameter (its ``requires_grad`` kept) or a buffer."""
    if isinstance(old, nn.Parameter):
        return nn.Parameter(value.detach().clone(), requires_grad=old.requires_grad)
    return value.detach().clone()


@torch.no_grad()
def append_out(mod: nn.Module, k: int, values: Mapping[str, Tensor] | None = None) -> None:
    """Append ``k`` units to ``mod``'s own (a producer's rows, a norm's channels).

    ``values`` gives the new entries of tensors without a default (a producer's ``weight``
    ``(k, ...)``, any shape holding ``k`` rows of its own; ``bias`` ``(k,)``); a norm's start at
    weight 1, bias 0, running mean 0 and variance 1, which normalises as a fresh layer does.
    """
    kind = _kind(mod)
    given = dict(values or {})
    for name, start in kind.out_tensors.items():
        old = getattr(mod, name, None)
        if old is None:
            continue
        if name in given:
            new = given[name].reshape(k, *old.shape[1:]).to(old)
        elif start is not None:
            new = old.new_full((k, *old.shape[1:]), start)
        else:
            raise GrowthError(f"{type(mod).__name__}: the new units' {name} must be given")
        setattr(mod, name, _param(old, torch.cat([old, new])))
    setattr(mod, kind.out_size, getattr(mod, kind.out_size) + k)


@torch.no_grad()
def append_in(mod: nn.Module, n: int, k: int, slices: Tensor | None = None) -> None:
    """``mod`` reads ``k`` more units after its ``n``: new weight slices ``(p, k, r)`` (``None``:
    zeros, which leaves the function unchanged)."""
    kind = _kind(mod)
    if kind.in_size is None:
        raise GrowthError(f"{type(mod).__name__} reads no units")
    w = weight_of(mod)
    r = unit_view(w, n).shape[2]
    shape = (w.shape[0], k * r) if w.dim() == 2 else (w.shape[0], k, *w.shape[2:])
    extra = w.new_zeros(shape) if slices is None else slices.reshape(shape).to(w)
    mod.weight = _param(w, torch.cat([w, extra], 1))
    setattr(mod, kind.in_size, weight_of(mod).shape[1])


def slice_optimizer_state(
    optimizer: torch.optim.Optimizer | None, old: Tensor, new: Tensor, keep: Tensor, dim: int
) -> None:
    """Move ``old``'s optimizer entry to ``new``, its state tensors sliced to ``keep`` along ``dim``."""
    if optimizer is None:
        return
    for group in optimizer.param_groups:
        group["params"] = [new if p is old else p for p in group["params"]]
    state = optimizer.state.pop(old, None)
    if state:
        optimizer.state[new] = {
            key: (v.index_select(dim, keep.to(v.device)) if isinstance(v, Tensor) and v.shape == old.shape else v)
            for key, v in state.items()
        }


def _select(mod: nn.Module, name: str, dim: int, keep: Tensor, optimizer: torch.optim.Optimizer | None) -> None:
    old = getattr(mod, name)
    new = _param(old, old.index_select(dim, keep.to(old.device)))
    setattr(mod, name, new)
    if isinstance(old, nn.Parameter):
        slice_optimizer_state(optimizer, old, new, keep, dim)


@torch.no_grad()
def keep_out(mod: nn.Module, keep: Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Keep only units ``keep`` (sorted indices) of ``mod``'s own; an optimizer's entries follow."""
    kind = _kind(mod)
    for name in kind.out_tensors:
        if getattr(mod, name, None) is not None:
            _select(mod, name, 0, keep, optimizer)
    setattr(mod, kind.out_size, int(keep.numel()))


@torch.no_grad()
def keep_in(mod: nn.Module, n: int, keep: Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
    """``mod`` reads only units ``keep`` of the ``n`` it read (their columns, ``r`` each)."""
    kind = _kind(mod)
    assert kind.in_size is not None
    w = weight_of(mod)
    cols = unit_columns(keep, n, w.shape[1]) if w.dim() == 2 else keep
    _select(mod, "weight", 1, cols, optimizer)
    setattr(mod, kind.in_size, weight_of(mod).shape[1])


@torch.no_grad()
def reset_out(mod: nn.Module, units: Tensor, values: Mapping[str, Tensor] | None = None) -> list[Tensor]:
    """Give ``units`` of ``mod``'s own their starting values (a norm's defaults, or ``values``:
    a producer's new rows ``(k, ...)`` and biases); returns the tensors written (for their
    optimizer state)."""
    kind = _kind(mod)
    given = dict(values or {})
    written = []
    for name, start in kind.out_tensors.items():
        t = getattr(mod, name, None)
        if t is None:
            continue
        if name in given:
            t[units] = given[name].reshape(units.numel(), *t.shape[1:]).to(t)
        elif start is not None:
            t[units] = start
        else:
            raise GrowthError(f"{type(mod).__name__}: the reset units' {name} must be given")
        written.append(t)
    return written
