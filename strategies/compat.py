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

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import torch
from avalanche.training.plugins import SynapticIntelligencePlugin
from avalanche.training.utils import ParamData
from torch import Tensor, nn

from clgrow import GrowthError

__all__ = [
    "pad_leading",
    "carry_optimizer_state",
    "ParamStore",
    "SNAPSHOT_STORES",
    "find_param_state",
    "align_param_state",
    "optimizer_state_by_name",
    "make_optimizers_checkpointable",
    "SIPlugin",
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


#: Stores that hold copies of parameter values, per plugin class name: their new entries take the
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
                            f"{tuple(p.shape)}; remove the plugin or add its layout to clgrow.strategies.compat"
                        )
                    equal = equal and t.device == p.device and torch.equal(t.reshape(p.shape), p.detach())
                snapshot = equal and bool(flat) if declared is None else declared
                stores.append(ParamStore(plugin, path, mapping, snapshot, flat))
    return stores


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
            new = pad_leading(t.reshape(old), p.shape, fill)
            if flat:
                new = new.flatten()
            if isinstance(entry, ParamData):
                entry.shape = new.shape
                entry._data = new  # ParamData's setter refuses new shapes on purpose; we change it knowingly
            else:
                store.mapping[name] = new
            padded += 1
    return padded


class SIPlugin(SynapticIntelligencePlugin):
    """Synaptic Intelligence with the parameter copies Avalanche 0.6 forgets to make on CPU.

    Avalanche's ``extract_weights`` stores ``param.detach().cpu().flatten()``. On a CUDA device
    that is a copy; on CPU it is a *view* of the parameter, so the stored "old" and "new"
    weights of every step are the same tensor (the path integral stays 0) and the anchor of the
    penalty moves with the weights (the penalty stays 0): SI silently trains as Naive. This
    subclass stores clones (on the CPU, as Avalanche does) and is otherwise Avalanche's plugin:
    same importances, same clipping, same penalty, identical to Avalanche's results on CUDA.
    """

    @staticmethod
    @torch.no_grad()
    def _copy(model: nn.Module, target: Mapping[str, ParamData], excluded: set[str], grad: bool = False) -> None:
        for name, param in SynapticIntelligencePlugin.allowed_parameters(model, excluded):
            src = param.grad if grad else param
            if src is None:  # a parameter without gradient this step moved by nothing
                target[name].data = torch.zeros(param.numel())
            else:
                target[name].data = src.detach().flatten().to("cpu", copy=True)

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        SynapticIntelligencePlugin.create_syn_data(strategy.model, self.ewc_data, self.syn_data, self.excluded_parameters)
        self._copy(strategy.model, self.ewc_data[0], self.excluded_parameters)
        for trajectory in self.syn_data["trajectory"].values():
            trajectory.data.fill_(0.0)

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        self._copy(strategy.model, self.syn_data["old_theta"], self.excluded_parameters)

    def after_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        syn = self.syn_data
        self._copy(strategy.model, syn["new_theta"], self.excluded_parameters)
        self._copy(strategy.model, syn["grad"], self.excluded_parameters, grad=True)
        for name in syn["trajectory"]:
            syn["trajectory"][name].data += syn["grad"][name].data * (syn["new_theta"][name].data - syn["old_theta"][name].data)


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
