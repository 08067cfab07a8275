"""Optimizer state of grown parameters: old entries carried over, zero-padded to the new shape.

Growth only ever *appends* (rows to a hidden layer's weight and bias, columns to its consumer's
weight, rows to the head), so an old tensor maps onto the leading block of the new one in every
dimension; :func:`pad_leading` is that map.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from clgrow.prune import slice_by

__all__ = ["pad_leading", "optimizer_state_by_name", "carry_optimizer_state", "carry_sliced_state"]


def pad_leading(old: Tensor, shape: torch.Size | tuple[int, ...], fill: Tensor | float = 0.0) -> Tensor:
    """A tensor of ``shape`` whose leading block is ``old`` and the rest ``fill``.

    ``fill`` may be a tensor of ``shape`` (its values are used outside the block).
    """
    if old.dim() != len(shape) or any(o > n for o, n in zip(old.shape, shape)):
        raise ValueError(f"cannot pad a tensor of shape {tuple(old.shape)} to {tuple(shape)}")
    if isinstance(fill, Tensor):
        out = fill.detach().clone().to(old)
    else:
        out = torch.full(tuple(shape), float(fill), dtype=old.dtype, device=old.device)
    out[tuple(slice(0, s) for s in old.shape)] = old
    return out


def optimizer_state_by_name(optimizer: torch.optim.Optimizer, model: nn.Module) -> dict[str, dict[str, Any]]:
    """The optimizer's per-parameter state, keyed by the model's parameter names."""
    return {n: dict(optimizer.state[p]) for n, p in model.named_parameters() if p in optimizer.state}


def carry_optimizer_state(
    optimizer: torch.optim.Optimizer,
    model: nn.Module,
    before: Mapping[str, dict[str, Any]],
    old_shapes: Mapping[str, torch.Size],
) -> int:
    """Give grown parameters their old optimizer state, zero-padded to the new shape.

    Avalanche's ``update_optimizer`` resets the state of a replaced tensor; momentum and
    Adam moments of the old entries are worth keeping. Returns the number of parameters
    whose state was carried over.
    """
    carried = 0
    for name, p in model.named_parameters():
        old_state, old_shape = before.get(name), old_shapes.get(name)
        if not old_state or old_shape is None or old_shape == p.shape:
            continue
        new_state = {}
        for key, value in old_state.items():
            if isinstance(value, Tensor) and value.shape == old_shape:
                new_state[key] = pad_leading(value, p.shape)
            else:
                new_state[key] = value
        optimizer.state[p] = new_state
        carried += 1
    return carried


#: Stores that hold copies of parameter values, per plugin class name: their new entries take the
#: parameter's current values (so a penalty ``imp * (p - saved)**2`` starts at zero there), every


def carry_sliced_state(
    optimizer: torch.optim.Optimizer,
    model: nn.Module,
    before: Mapping[str, dict[str, Any]],
    slices: Mapping[str, list[tuple[int, Tensor]]],
) -> int:
    """Give pruned parameters their old optimizer state, sliced to the units that stay
    (:attr:`clgrow.prune.PruneReport.slices`). Returns the number of parameters carried."""
    carried = 0
    for name, p in model.named_parameters():
        old_state, cuts = before.get(name), slices.get(name)
        if not old_state or not cuts:
            continue
        new_state = {}
        for key, value in old_state.items():
            if isinstance(value, Tensor) and value.dim() == p.dim() and value.dim() > 0:
                value = slice_by(value, cuts)
            new_state[key] = value
        optimizer.state[p] = new_state
        carried += 1
    return carried
