"""Keep Avalanche's per-parameter regulariser state consistent after parameters grow.

Avalanche pads stored tensors with ``ParamData.expand``, which refuses growth in two dimensions at
once (a hidden layer whose predecessor also grew) and, for Synaptic Intelligence, pads the
*flattened* tensor at its end, which misplaces every entry after the first row once columns are
added. The helpers here find every mapping ``parameter name -> tensor or ParamData`` inside the
strategy's plugins (Avalanche's private attributes: :data:`SNAPSHOT_STORES` names them) and pad
in the parameter's own shape instead, before Avalanche looks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import torch
from avalanche.training.utils import ParamData
from torch import Tensor, nn

from clgrow import GrowthError
from clgrow.methods.prune import slice_by
from clgrow.strategies.optimizer_state import pad_leading

__all__ = [
    "ParamStore",
    "SNAPSHOT_STORES",
    "find_param_state",
    "align_param_state",
    "slice_param_state",
    "AVALANCHE_VERSION",
]

#: The Avalanche release whose private attributes this module reads (a test pins it).
AVALANCHE_VERSION = "0.6.0"


#: parameter's current values (so a penalty ``imp * (p - saved)**2`` starts at zero there), every
#: other store is padded with zeros (no importance, no accumulated statistic). A store of a plugin
#: not listed here counts as a copy when all its entries equal the parameters when growth starts.
SNAPSHOT_STORES: dict[str, tuple[str, ...]] = {
    "EWCPlugin": ("saved_params",),
    "SynapticIntelligencePlugin": ("ewc_data[0]", "syn_data['old_theta']", "syn_data['new_theta']"),
    "MASPlugin": ("params",),
    "RWalkPlugin": ("checkpoint_params", "iter_params", "exp_params"),
}


@dataclass
class ParamStore:
    """One mapping ``parameter name -> tensor or ParamData`` found inside a plugin."""

    plugin: Any
    path: str
    mapping: MutableMapping[str, Any]
    snapshot: bool
    flat: dict[str, bool]


def _tensor_of(value: Any) -> Tensor | None:
    if isinstance(value, ParamData):
        return value.data
    return value if isinstance(value, Tensor) else None


def _mappings(obj: Any, path: str, depth: int, names: set[str]) -> Iterator[tuple[str, MutableMapping[str, Any]]]:
    if depth > 4 or isinstance(obj, (nn.Module, torch.optim.Optimizer, Tensor, ParamData)):
        return
    if isinstance(obj, MutableMapping):
        keys = [k for k in obj if isinstance(k, str)]
        if keys and any(k in names for k in keys) and all(_tensor_of(obj[k]) is not None for k in keys if k in names):
            yield path, obj
            return
        for k, v in obj.items():
            yield from _mappings(v, f"{path}[{k!r}]", depth + 1, names)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _mappings(v, f"{path}[{i}]", depth + 1, names)


def _declared_snapshot(plugin: Any, path: str) -> bool | None:
    for cls in type(plugin).__mro__:
        if cls.__name__ in SNAPSHOT_STORES:
            return any(path == p or path.startswith(p + "[") for p in SNAPSHOT_STORES[cls.__name__])
    return None


def find_param_state(plugins: Iterable[Any], model: nn.Module) -> list[ParamStore]:
    """Every per-parameter store the plugins keep, checked to be alignable before growth.

    A store is any mapping from parameter names to tensors or ``ParamData`` reachable from a
    plugin's attributes (through dicts, lists and tuples; models are skipped: they are copies
    with their own shapes). Each entry must have the parameter's shape, its flattened shape,
    or be a scalar.

    Raises
    ------
    GrowthError
        Naming the plugin, the store and the parameter whose entry has another shape, before
        anything changes.
    """
    params = dict(model.named_parameters())
    names = set(params)
    stores = []
    for plugin in plugins:
        for attr, value in vars(plugin).items():
            for path, mapping in _mappings(value, attr, 0, names):
                declared = _declared_snapshot(plugin, path)
                flat: dict[str, bool] = {}
                equal = declared is None  # only an undeclared store is judged by its values
                for name, entry in mapping.items():
                    p, t = params.get(name), _tensor_of(entry)
                    if p is None or t is None:
                        continue
                    if t.shape == p.shape:
                        flat[name] = False
                    elif t.dim() == 1 and p.dim() > 1 and t.numel() == p.numel():
                        flat[name] = True
                    elif t.numel() == 1:
                        continue
                    else:
                        raise GrowthError(
                            f"cannot keep {type(plugin).__name__}'s state aligned when {name!r} grows: "
                            f"{type(plugin).__name__}.{path}[{name!r}] has shape {tuple(t.shape)}, the parameter "
                            f"{tuple(p.shape)}; remove the plugin or add its layout to clgrow.strategies.param_state"
                        )
                    equal = equal and t.device == p.device and torch.equal(t.reshape(p.shape), p.detach())
                snapshot = equal and bool(flat) if declared is None else declared
                stores.append(ParamStore(plugin, path, mapping, snapshot, flat))
    return stores


def _put(store: ParamStore, name: str, new: Tensor, flat: bool) -> None:
    """Write ``new`` (in the parameter's own shape) back as ``store``'s entry for ``name``."""
    if flat:
        new = new.flatten()
    entry = store.mapping.get(name)
    if isinstance(entry, ParamData):
        entry.shape = new.shape
        entry._data = new  # ParamData's setter refuses new shapes on purpose; we change it knowingly
    else:
        store.mapping[name] = new


def align_param_state(stores: Iterable[ParamStore], model: nn.Module, old_shapes: Mapping[str, torch.Size]) -> int:
    """Pad the stores found by :func:`find_param_state` to the grown parameters' shapes.

    Old entries keep their place in the parameter's own shape (a flattened store is reshaped,
    padded and flattened again); new entries get the plugin's neutral value: the parameter's
    current value in stores of copies, zero elsewhere. Returns the number of entries padded.
    """
    params = dict(model.named_parameters())
    padded = 0
    for store in stores:
        for name, flat in store.flat.items():
            p, old = params.get(name), old_shapes.get(name)
            entry = store.mapping.get(name)
            t = _tensor_of(entry)
            if p is None or old is None or t is None or old == p.shape or t.numel() != old.numel():
                continue
            fill = p.detach() if store.snapshot else 0.0
            _put(store, name, pad_leading(t.reshape(old), p.shape, fill), flat)
            padded += 1
    return padded


def slice_param_state(
    stores: Iterable[ParamStore],
    slices: Mapping[str, list[tuple[int, Tensor]]],
    old_shapes: Mapping[str, torch.Size],
) -> int:
    """Slice the stores found by :func:`find_param_state` as a prune sliced the parameters
    (:attr:`clgrow.methods.prune.PruneReport.slices`): each entry, in its parameter's own shape, keeps the
    entries of the units that stay (a flattened store is reshaped, sliced and flattened again).
    Returns the number of entries sliced."""
    sliced = 0
    for store in stores:
        for name, flat in store.flat.items():
            cuts, old = slices.get(name), old_shapes.get(name)
            entry = store.mapping.get(name)
            t = _tensor_of(entry)
            if not cuts or old is None or t is None or t.numel() != old.numel():
                continue
            _put(store, name, slice_by(t.reshape(old), cuts), flat)
            sliced += 1
    return sliced
