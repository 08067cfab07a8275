"""Remove hidden units: the inverse of growth's insertion (issue 28, started: the ``drop`` method).

A unit leaves with its incoming row and bias, its column in every consumer and its cohort entry;
the units that stay keep their order. :func:`select_units` names which units leave (``dead``:
zero on every sample of the data, ``dormant``: τ-dormant as the inactivity metrics count it,
``norm``: the smallest outgoing-weight norms), :func:`prune` removes them in one step that either
completes or leaves the model bit-identical, and slices an optimizer's per-parameter state to the
units that stay. Removing units that are dead on some data leaves the network's outputs on that
data unchanged exactly: their activations there are zero, so their columns contribute nothing.

Convolutional sites prune channels the same way: the filter, its batch-norm channel (parameters
and running statistics) and its slice of every consumer (a kernel's input channel, a flattened
channel's ``H·W`` columns) leave together. The reverse SWE transfer (moving what leaving units
contribute into the remaining ones) is not here yet.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from clgrow.errors import GrowthError
from clgrow.inactivity import accumulate_activity, dormant_mask
from clgrow.model import GrowableMLP, unit_columns, unit_view

__all__ = ["PruneReport", "SELECTORS", "select_units", "prune", "slice_by"]

#: How :func:`select_units` chooses units.
SELECTORS = ("dead", "dormant", "norm")


@dataclass
class PruneReport:
    """What one prune step did.

    Attributes
    ----------
    removed : dict[int, Tensor]
        Indices (in the layer as it was) of the units removed, per hidden layer.
    seconds : float
    hidden_sizes_before, hidden_sizes_after : list[int]
    info : dict
    """

    removed: dict[int, Tensor]
    seconds: float
    hidden_sizes_before: list[int]
    hidden_sizes_after: list[int]
    info: dict[str, Any] = field(default_factory=dict)
    #: Per parameter name, the ``(dim, kept indices)`` its tensors were sliced by (what optimizer
    #: and regulariser state of the same parameter must be sliced by too).
    slices: dict[str, list[tuple[int, Tensor]]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Units removed in all."""
        return sum(int(v.numel()) for v in self.removed.values())


def select_units(
    model: GrowableMLP,
    how: str,
    data: Iterable[Any] | None = None,
    *,
    tau: float = 0.025,
    count: Mapping[int, int] | None = None,
) -> dict[int, Tensor]:
    """The units of every hidden layer that ``how`` chooses.

    Parameters
    ----------
    how : {"dead", "dormant", "norm"}
        ``dead``: zero on every sample of ``data``; ``dormant``: τ-dormant on ``data``; ``norm``:
        the ``count[layer]`` units with the smallest outgoing-weight norm (no data).
    data : iterable of batches, optional
        Needed by ``dead`` and ``dormant``.
    count : mapping layer -> int, optional
        ``norm`` only: how many units per layer.

    Returns
    -------
    dict[int, Tensor]
        Sorted unit indices per layer (layers with none are absent).
    """
    if how not in SELECTORS:
        raise GrowthError(f"unknown selector {how!r}; known: {', '.join(SELECTORS)}")
    out: dict[int, Tensor] = {}
    if how == "norm":
        if count is None:
            raise GrowthError("select_units('norm') needs count: {layer: units}")
        for layer, c in count.items():
            n = model.hidden_sizes[layer]
            norms = sum(unit_view(cons.weight.detach(), n).norm(dim=(0, 2)) for cons in model.consumers(layer))
            assert isinstance(norms, Tensor)
            if c > 0:
                out[layer] = torch.sort(torch.argsort(norms, stable=True)[:c]).values
        return out
    if data is None:
        raise GrowthError(f"select_units({how!r}) needs data to measure activity on")
    try:
        acc = accumulate_activity(model, data)
    except GrowthError:
        raise GrowthError(
            "select_units: the data is empty: choosing units by activity needs at least one sample"
        ) from None
    for layer in range(model.num_hidden_layers):
        if how == "dead":
            nonzero = acc.nonzero[layer]
            assert nonzero is not None
            mask = ~nonzero
        else:
            abs_sum = acc.abs_sum[layer]
            assert abs_sum is not None
            mask = dormant_mask(abs_sum / acc.samples, tau)
        idx = torch.nonzero(mask).flatten()
        if idx.numel():
            out[layer] = idx
    return out


def slice_by(t: Tensor, cuts: list[tuple[int, Tensor]]) -> Tensor:
    """``t`` with each ``(dim, kept indices)`` of :attr:`PruneReport.slices` applied in turn."""
    for dim, keep in cuts:
        t = t.index_select(dim, keep.to(t.device))
    return t


def _slice_state(optimizer: torch.optim.Optimizer | None, old: Tensor, new: Tensor, keep: Tensor, dim: int) -> None:
    """Move ``old``'s optimizer entry to ``new``, its state tensors sliced to ``keep`` along ``dim``."""
    if optimizer is None:
        return
    for group in optimizer.param_groups:
        group["params"] = [new if p is old else p for p in group["params"]]
    state = optimizer.state.pop(old, None)
    if state:
        optimizer.state[new] = {
            k: (slice_by(v, [(dim, keep)]) if isinstance(v, Tensor) and v.shape == old.shape else v)
            for k, v in state.items()
        }


def _assign(
    mod: torch.nn.Module, name: str, value: Tensor, dim: int, optimizer: torch.optim.Optimizer | None, keep: Tensor
) -> None:
    """Give ``mod`` its tensor ``name`` sliced to ``value`` (a parameter keeps ``requires_grad`` and
    its optimizer entry, sliced along ``dim``), and its size attribute along ``dim``."""
    old = getattr(mod, name)
    if isinstance(old, torch.nn.Parameter):
        new = torch.nn.Parameter(value.detach().clone(), requires_grad=old.requires_grad)
        setattr(mod, name, new)
        _slice_state(optimizer, old, new, keep, dim)
    else:
        setattr(mod, name, value.clone())
    if name == "weight":
        if isinstance(mod, torch.nn.Linear):
            attr = "out_features" if dim == 0 else "in_features"
        elif isinstance(mod, torch.nn.Conv2d):
            attr = "out_channels" if dim == 0 else "in_channels"
        else:
            attr = "num_features"
        setattr(mod, attr, value.shape[dim])


def _remove(model: GrowableMLP, layer: int, units: Tensor, optimizer: torch.optim.Optimizer | None) -> None:
    prod = model.hidden[layer]
    n = prod.weight.shape[0]
    keep_mask = torch.ones(n, dtype=torch.bool)
    keep_mask[units.cpu()] = False
    keep = torch.nonzero(keep_mask).flatten().to(prod.weight.device)
    _assign(prod, "weight", prod.weight.index_select(0, keep), 0, optimizer, keep)
    _assign(prod, "bias", prod.bias.index_select(0, keep), 0, optimizer, keep)
    norm = model.norm(layer)
    if norm is not None:  # a channel's batch norm leaves with it
        for name in ("weight", "bias", "running_mean", "running_var"):
            t = getattr(norm, name, None)
            if t is not None:
                _assign(norm, name, t.index_select(0, keep), 0, optimizer, keep)
        norm.num_features = len(keep)  # type: ignore[assignment]
    for cons in model.consumers(layer):
        cols = unit_columns(keep, n, cons.weight.shape[1])
        _assign(cons, "weight", cons.weight.index_select(1, cols), 1, optimizer, cols)
    name = f"cohort_{layer}"
    setattr(model, name, getattr(model, name).index_select(0, keep.to(getattr(model, name).device)))


def prune(
    model: GrowableMLP,
    units: Mapping[int, Tensor | list[int]],
    *,
    optimizer: torch.optim.Optimizer | None = None,
    min_units: int = 1,
) -> PruneReport:
    """Remove ``units`` (per hidden layer, indices as the layer is now) in one step.

    Parameters
    ----------
    units : mapping layer -> indices
        What leaves, e.g. :func:`select_units`'s answer.
    optimizer : Optimizer, optional
        Its parameters are swapped for the new ones and their state sliced to the units that stay.
    min_units : int
        Every layer keeps at least this many units; asking for more is refused.

    Raises
    ------
    GrowthError
        An unknown layer, an index out of range or repeated, or a layer left below ``min_units``;
        the model (and the optimizer) are then exactly as before.
    """
    start = time.perf_counter()
    before = model.hidden_sizes
    cleaned: dict[int, Tensor] = {}
    for layer, idx in units.items():
        model._check_layer(layer)
        t = torch.as_tensor(idx, dtype=torch.long).flatten().cpu()
        n = before[layer]
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n):
            raise GrowthError(f"prune: layer {layer} has units 0..{n - 1}, got indices {t.tolist()}")
        if t.unique().numel() != t.numel():
            raise GrowthError(f"prune: layer {layer}: indices repeated in {t.tolist()}")
        if n - t.numel() < min_units:
            raise GrowthError(f"prune: layer {layer} would keep {n - t.numel()} of {n} units, fewer than {min_units}")
        if t.numel():
            cleaned[layer] = torch.sort(t).values
    names = {id(mod): name for name, mod in model.named_modules()}
    slices: dict[str, list[tuple[int, Tensor]]] = {}
    for layer, idx in cleaned.items():
        keep_mask = torch.ones(before[layer], dtype=torch.bool)
        keep_mask[idx] = False
        keep = torch.nonzero(keep_mask).flatten()
        producer = names[id(model.hidden[layer])]
        slices.setdefault(f"{producer}.weight", []).append((0, keep))
        slices.setdefault(f"{producer}.bias", []).append((0, keep))
        norm = model.norm(layer)
        if norm is not None:
            for pname, _ in norm.named_parameters(recurse=False):
                slices.setdefault(f"{names[id(norm)]}.{pname}", []).append((0, keep))
        for cons in model.consumers(layer):
            cols = unit_columns(keep, before[layer], cons.weight.shape[1])
            slices.setdefault(f"{names[id(cons)]}.weight", []).append((1, cols))
    snap = model.snapshot()
    saved_opt = (
        None if optimizer is None else ([list(g["params"]) for g in optimizer.param_groups], dict(optimizer.state))
    )
    try:
        for layer, idx in cleaned.items():
            _remove(model, layer, idx, optimizer)
    except BaseException:
        model.restore(snap)
        if optimizer is not None and saved_opt is not None:
            for group, params in zip(optimizer.param_groups, saved_opt[0]):
                group["params"] = params
            optimizer.state.clear()
            optimizer.state.update(saved_opt[1])
        raise
    return PruneReport(cleaned, time.perf_counter() - start, before, model.hidden_sizes, slices=slices)
