"""Keep Avalanche's per-parameter state consistent after parameters grow.

Growth only ever *appends*: rows to a hidden layer's weight and bias, columns to its
consumer's weight, rows to the head. So an old tensor always maps onto the leading block of
the new one, in every dimension. Avalanche pads stored tensors with ``ParamData.expand``,
which refuses growth in two dimensions at once (a hidden layer whose predecessor also grew)
and, for Synaptic Intelligence, pads the *flattened* tensor at its end, which misplaces every
entry after the first row once columns are added. The helpers here pad in the parameter's
own shape instead, before Avalanche looks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from avalanche.training.utils import ParamData
from torch import Tensor, nn

__all__ = [
    "pad_leading",
    "carry_optimizer_state",
    "fix_regularizer_state",
    "optimizer_state_by_name",
    "make_optimizers_checkpointable",
]


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


def _pad_paramdata(pd: ParamData, shape: torch.Size, old_shape: torch.Size, flat: bool, fill: Tensor | None) -> None:
    data = pd.data
    if flat:
        if data.numel() != old_shape.numel():
            return
        data = data.reshape(old_shape)
    elif data.shape != old_shape:
        return
    fill_t = None if fill is None else fill.detach().to(data.device, data.dtype)
    new = pad_leading(data, shape, 0.0 if fill_t is None else fill_t)
    if flat:
        new = new.flatten()
    pd.shape = new.shape
    pd._data = new  # ParamData's setter refuses new shapes on purpose; we change it knowingly


def _fix_dicts(
    stores: Iterable[tuple[Mapping[str, ParamData], bool, bool]],
    params: Mapping[str, nn.Parameter],
    old_shapes: Mapping[str, torch.Size],
) -> None:
    for store, flat, use_values in stores:
        for name, pd in store.items():
            p = params.get(name)
            old = old_shapes.get(name)
            if p is None or old is None or old == p.shape or not isinstance(pd, ParamData):
                continue
            fill = p.detach().flatten().reshape(p.shape) if use_values else None
            _pad_paramdata(pd, p.shape, old, flat, fill)


def fix_regularizer_state(plugins: Iterable[Any], model: nn.Module, old_shapes: Mapping[str, torch.Size]) -> None:
    """Pad EWC's and SI's stored tensors of grown parameters in their true shape.

    Importances of new entries are zero (no penalty on what growth added); stored parameter
    values of new entries take the current values.
    """
    from avalanche.training.plugins import EWCPlugin, SynapticIntelligencePlugin

    params = dict(model.named_parameters())
    for plugin in plugins:
        if isinstance(plugin, EWCPlugin):
            stores = [(d, False, True) for d in plugin.saved_params.values()]
            stores += [(d, False, False) for d in plugin.importances.values()]
            _fix_dicts(stores, params, old_shapes)
        elif isinstance(plugin, SynapticIntelligencePlugin):
            ewc_theta, ewc_imp = plugin.ewc_data
            stores = [(ewc_theta, True, True), (ewc_imp, True, False)]
            for key, store in plugin.syn_data.items():
                stores.append((store, True, key in ("old_theta", "new_theta")))
            _fix_dicts(stores, params, old_shapes)


def make_optimizers_checkpointable() -> list[str]:
    """Let Avalanche's dill-based checkpoints pickle torch optimizers by reference.

    ``torch.optim`` deletes its submodule attributes (``del adam`` in its ``__init__``), so
    dill cannot find ``torch.optim.adam.Adam`` by name and tries to pickle the class by value,
    which fails (``Can't pickle sentinel``). Re-attaching the already-imported submodules to
    the package, as a plain import would, restores lookup by name. Returns the names attached.
    """
    import sys

    import torch.optim

    attached = []
    for name, module in list(sys.modules.items()):
        parent, _, short = name.rpartition(".")
        if parent == "torch.optim" and module is not None and not hasattr(torch.optim, short):
            setattr(torch.optim, short, module)
            attached.append(short)
    return attached
