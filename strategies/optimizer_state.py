"""Optimizer state across a stream: grown parameters' old entries carried over, and a restart at
every experience.

Growth only ever *appends* (rows to a hidden layer's weight and bias, columns to its consumer's
weight, rows to the head), so an old tensor maps onto the leading block of the new one in every
dimension; :func:`pad_leading` is that map.

Two facts about Adam in a stream, measured in BENCHMARKS.md ("Why units die in a stream"):

* PyTorch's Adam keeps one step count per tensor. New entries of a grown tensor with zero moments
  under an advanced count get no bias correction of their second moment, and their first hundred
  steps are 2–6 times the learning rate. :func:`carry_optimizer_state` gives them the old entries'
  mean second moment (along each grown dimension) instead, so they step like their neighbours.
* A second moment carried across a task switch is calibrated to the previous task's (by then
  small) gradients; the new task's first gradients are large and consistent, and every incoming
  weight of a unit moves several learning rates per step in the same direction: the unit's
  pre-activation falls on every input and it dies within tens of steps. :class:`ResetOptimizerPlugin`
  restarts the optimizer's state at every experience (as FACIL does; Avalanche carries it), for
  every model alike, grown or fixed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from avalanche.core import SupervisedPlugin
from torch import Tensor, nn

from clgrow.methods.prune import slice_by

__all__ = [
    "pad_leading",
    "pad_with_means",
    "optimizer_state_by_name",
    "carry_optimizer_state",
    "carry_sliced_state",
    "ResetOptimizerPlugin",
    "SECOND_MOMENTS",
]

#: Per-entry state that estimates a squared gradient (Adam/AdamW, AMSGrad, RMSprop): new entries
#: take the old entries' mean (:func:`pad_with_means`); every other tensor (first moments, SGD's
#: momentum) starts at zero.
SECOND_MOMENTS = ("exp_avg_sq", "max_exp_avg_sq", "square_avg")


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


def pad_with_means(old: Tensor, shape: torch.Size | tuple[int, ...]) -> Tensor:
    """A tensor of ``shape`` whose leading block is ``old`` and whose appended entries are the means
    of ``old`` along each grown dimension (a new row takes each column's mean over the old rows; a
    block grown in two dimensions, the mean of the means).

    Parameters
    ----------
    old : Tensor ``(n_1, ..., n_d)``
    shape : sizes ``(N_1, ..., N_d)`` with ``N_i >= n_i``

    Returns
    -------
    Tensor ``shape``
    """
    if old.dim() != len(shape) or any(o > n for o, n in zip(old.shape, shape)):
        raise ValueError(f"cannot pad a tensor of shape {tuple(old.shape)} to {tuple(shape)}")
    out = old
    for dim, size in enumerate(shape):
        extra = size - out.shape[dim]
        if extra > 0:
            if out.shape[dim] == 0:
                raise ValueError(f"cannot take the mean along an empty dimension {dim} of {tuple(old.shape)}")
            mean = out.mean(dim, keepdim=True)
            out = torch.cat([out, mean.expand(*out.shape[:dim], extra, *out.shape[dim + 1 :])], dim)
    return out.contiguous()


def optimizer_state_by_name(optimizer: torch.optim.Optimizer, model: nn.Module) -> dict[str, dict[str, Any]]:
    """The optimizer's per-parameter state, keyed by the model's parameter names."""
    return {n: dict(optimizer.state[p]) for n, p in model.named_parameters() if p in optimizer.state}


def carry_optimizer_state(
    optimizer: torch.optim.Optimizer,
    model: nn.Module,
    before: Mapping[str, dict[str, Any]],
    old_shapes: Mapping[str, torch.Size],
) -> int:
    """Give grown parameters their old optimizer state, padded to the new shape.

    Avalanche's ``update_optimizer`` resets the state of a replaced tensor; momentum and
    Adam moments of the old entries are worth keeping. New entries start with a zero first moment
    and, for second moments (``SECOND_MOMENTS``), the old entries' mean along each grown dimension:
    a zero second moment under the tensor's advanced step count would make their steps several
    times the learning rate (module docstring). Returns the number of parameters whose state was
    carried over.
    """
    carried = 0
    for name, p in model.named_parameters():
        old_state, old_shape = before.get(name), old_shapes.get(name)
        if not old_state or old_shape is None or old_shape == p.shape:
            continue
        new_state = {}
        for key, value in old_state.items():
            if isinstance(value, Tensor) and value.shape == old_shape:
                new_state[key] = (
                    pad_with_means(value, p.shape)
                    if key in SECOND_MOMENTS and value.numel() > 0
                    else pad_leading(value, p.shape)
                )
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
    (:attr:`clgrow.methods.prune.PruneReport.slices`). Returns the number of parameters carried."""
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


class ResetOptimizerPlugin(SupervisedPlugin):
    """Restart the optimizer's state (Adam's moments and step counts, SGD's momentum) at the start of
    every training experience.

    A state carried across a task switch makes the new task's first steps several learning rates
    long and kills units of every kind (module docstring; BENCHMARKS.md measures it). Attach it to
    every model of a comparison, grown or fixed: :func:`~clgrow.strategies.build_strategy` does
    (``reset_optimizer=True``), and so does every run of the command line unless
    ``--no-reset-optimizer``. It runs after the strategy has rebuilt its optimizer for the
    experience and before any growth, so a growth step carries nothing.
    """

    #: Where it stands among the strategy's plugins (``build_strategy`` sorts by it): before anything that changes the model at an experience's start.
    plugin_order: ClassVar[int] = 10

    def before_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """Clear every parameter's state."""
        strategy.optimizer.state.clear()
