"""Growth sites found in any ``nn.Module`` by tracing one forward pass.

A *site* is a producer (``Linear``, or ``Conv2d`` of one group) whose output, optionally through a
batch norm, goes to a ReLU and nowhere else, and whose ReLU output reaches only consumers that can
take new inputs: ``Linear`` and ``Conv2d`` layers, through dropout, pooling, flattening and
reshapes that keep each channel's entries together. Everything else is named as not a site, with
the reason (another activation, a residual add, a concatenation, a grouped convolution, ...).

Sites are found by running the model once on an example batch and recording what happens to every
tensor: module calls through forward hooks on the leaf modules, functional calls (``F.relu``,
``torch.flatten``, ``+``) through a ``TorchFunctionMode``. The trace follows tensors, not modules,
so a ``ReLU`` module called twice (torchvision's ``BasicBlock``), functional activations
(Avalanche's ``SlimResNet18``) and data-dependent routing (multi-head classifiers) are seen as
they run. :class:`GrowableModule` then grows the module in place and runs it with substitutions
(SWE's coupled weights through ``torch.func.functional_call``, SVoD's gates and activity capture
through forward hooks), so every extender, distributor and metric works on it unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves
from torch.utils.hooks import RemovableHandle

from clgrow.errors import GrowthError
from clgrow.model import GrowableMLP

__all__ = ["Site", "SiteConsumer", "NotASite", "SiteMap", "find_sites", "call_model", "call_args"]

#: Functions and methods that are a ReLU.
_RELU = frozenset({"relu", "relu_"})
#: Functions and methods that keep each channel's values together (pooling, dropout, reshapes).
_PASS_FUNCS = frozenset(
    {
        "dropout",
        "dropout1d",
        "dropout2d",
        "feature_dropout",
        "max_pool2d",
        "_max_pool2d",
        "max_pool2d_with_indices",
        "avg_pool2d",
        "adaptive_avg_pool2d",
        "adaptive_max_pool2d",
        "_adaptive_max_pool2d",
        "adaptive_max_pool2d_with_indices",
        "flatten",
        "view",
        "reshape",
        "squeeze",
        "contiguous",
        "clone",
    }
)
_PASS_MODULES = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Identity,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Flatten,
)
#: Calls the trace ignores: they read a tensor's metadata and produce no tensor the model uses.
_METADATA = frozenset({"size", "dim", "shape", "__get__", "numel", "device", "dtype", "__len__", "is_contiguous"})


@dataclass(frozen=True)
class SiteConsumer:
    """A layer that reads a site's units: its path in the model and how it reads them.

    ``kind`` is ``"conv"`` (input channels), ``"flatten"`` (``block`` consecutive columns per unit)
    or ``"pool"`` (one column per unit: a ``Linear`` after a ``Linear`` or after global pooling).
    """

    path: str
    kind: Literal["conv", "flatten", "pool"]
    block: int = 1


@dataclass(frozen=True)
class Site:
    """A producer whose ReLU units can grow.

    Attributes
    ----------
    producer : str
        Path of the ``Linear`` or ``Conv2d`` (``model.get_submodule(producer)``).
    norm : str or None
        Path of the batch norm between the producer and its ReLU.
    consumers : tuple of SiteConsumer
    positions : int
        Output positions per sample (``H·W`` of a convolution's output; 1 for a ``Linear``).
    pools : tuple of nn.Module, or None
        The pooling between the ReLU and the consumers, in order (``None`` when consumers are
        reached through different poolings).
    reads_out : bool
        Every consumer is an output layer (its output is the model's): the site feeds the head.
    """

    producer: str
    norm: str | None
    consumers: tuple[SiteConsumer, ...]
    positions: int = 1
    pools: tuple[nn.Module, ...] | None = ()
    reads_out: bool = False


@dataclass(frozen=True)
class NotASite:
    """A ``Linear`` or ``Conv2d`` that cannot grow, and why."""

    module: str
    reason: str


@dataclass(frozen=True)
class SiteMap:
    """What :func:`find_sites` found: the sites, first to last, and the layers that are not."""

    sites: tuple[Site, ...]
    refused: tuple[NotASite, ...]

    def describe(self) -> str:
        """One line per producer: a site with its consumers, or why it is not one."""
        lines = [f"{len(self.sites)} growth site(s):"]
        for i, s in enumerate(self.sites):
            via = f" -> {s.norm}" if s.norm else ""
            reads = ", ".join(f"{c.path} ({c.kind})" for c in s.consumers)
            lines.append(f"  site {i}: {s.producer}{via} -> ReLU -> {reads}")
        if self.refused:
            lines.append("not sites:")
            lines += [f"  {r.module}: {r.reason}" for r in self.refused]
        return "\n".join(lines)


# --------------------------------------------------------------------------- trace
@dataclass(eq=False)
class _Node:
    label: str
    module: nn.Module | None
    inputs: list[_Node | None]
    outputs: list[Tensor]
    users: list[_Node] = field(default_factory=list)
    call: tuple[Any, Any] = ((), {})  # a functional call's arguments (its pooling settings)


def _name(func: Any) -> str:
    return str(getattr(func, "__name__", func))


class _Tracer(TorchFunctionMode):
    """Records module calls (leaf modules, by hooks) and functional calls outside them."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.origin: dict[int, _Node] = {}
        self.keep: list[Tensor] = []  # so that no traced tensor's id is reused during the trace
        self.nodes: list[_Node] = []
        self.depth = 0
        self.paths = {id(m): p for p, m in model.named_modules()}
        self.handles: list[RemovableHandle] = []
        for mod in model.modules():
            if next(mod.children(), None) is None:
                self.handles.append(mod.register_forward_pre_hook(self._enter))
                self.handles.append(mod.register_forward_hook(self._leave))

    def _enter(self, mod: nn.Module, args: Any) -> None:
        self.depth += 1

    def _leave(self, mod: nn.Module, args: Any, out: Any) -> None:
        self.depth -= 1
        if isinstance(mod, (nn.Sequential, nn.Identity)) and isinstance(args, tuple) and args and out is args[0]:
            return  # an empty Sequential (a shortcut) or identity: the tensor passes through unchanged
        if self.depth == 0:
            self._record(type(mod).__name__, mod, args, out)

    def _record(self, label: str, mod: nn.Module | None, args: Any, out: Any, call: Any = ((), {})) -> None:
        outs = [t for t in tree_leaves(out) if isinstance(t, Tensor)]
        if not outs:
            return
        ins = [t for t in tree_leaves(args) if isinstance(t, Tensor)]
        node = _Node(label, mod, [self.origin.get(id(t)) for t in ins], outs, call=call)
        for src in node.inputs:
            if src is not None and node not in src.users:
                src.users.append(node)
        for t in outs:
            self.origin[id(t)] = node
        self.keep += ins + outs
        self.nodes.append(node)

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        name = _name(func)
        if self.depth == 0 and name not in _METADATA:
            self._record(name, None, (args, kwargs or {}), out, (args, kwargs or {}))
        return out

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def call_args(model: nn.Module, x: Tensor, task_labels: Tensor | int | None) -> tuple[Any, ...]:
    """``(x,)``, or ``(x, task_labels)`` for a multi-task model (one that routes samples by task:
    Avalanche's ``MultiTaskModule`` and clgrow's own models)."""
    if hasattr(model, "forward_single_task") or isinstance(model, GrowableMLP):
        if task_labels is None:
            task_labels = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        return (x, task_labels)
    return (x,)


def call_model(model: nn.Module, x: Tensor, task_labels: Tensor | int | None) -> Tensor:
    """``model(x)``, or ``model(x, task_labels)`` for a multi-task model."""
    return model(*call_args(model, x, task_labels))


def _siblings(model: nn.Module, path: str, width: int) -> list[str]:
    """Layers that play ``path``'s part for other tasks: the same sub-path under every other entry
    of the nearest ``ModuleDict`` or ``ModuleList`` above it, reading the same ``width``."""
    parts = path.split(".")
    for cut in range(len(parts) - 2, -1, -1):
        parent = model.get_submodule(".".join(parts[:cut])) if cut else model
        if isinstance(parent, (nn.ModuleDict, nn.ModuleList)):
            out = []
            keys = parent.keys() if isinstance(parent, nn.ModuleDict) else [str(i) for i in range(len(parent))]
            rest = ".".join(parts[cut + 1 :])
            for key in keys:
                p = ".".join([*parts[:cut], key, rest]).strip(".")
                try:
                    mod = model.get_submodule(p)
                except AttributeError:
                    continue
                if isinstance(mod, nn.Linear) and mod.in_features == width:
                    out.append(p)
            return out
    return [path]


def _is_relu(node: _Node) -> bool:
    return isinstance(node.module, nn.ReLU) or (node.module is None and node.label in _RELU)


def _passes(node: _Node) -> bool:
    if node.module is not None:
        return isinstance(node.module, _PASS_MODULES)
    return node.label in _PASS_FUNCS


def _as_pool(node: _Node) -> nn.Module | None:
    """A pass-through node that pools, as a module (a functional pooling rebuilt with its settings)."""
    pooling = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    if node.module is not None:
        return node.module if isinstance(node.module, pooling) else None
    args, kwargs = node.call
    rest, kw = list(args[1:]), {k: v for k, v in kwargs.items() if k != "input"}
    name = node.label.lstrip("_").removesuffix("_with_indices")
    kinds: dict[str, Callable[..., nn.Module]] = {
        "max_pool2d": nn.MaxPool2d,
        "avg_pool2d": nn.AvgPool2d,
        "adaptive_avg_pool2d": nn.AdaptiveAvgPool2d,
        "adaptive_max_pool2d": nn.AdaptiveMaxPool2d,
    }
    if name not in kinds:
        return None
    kw.pop("return_indices", None)
    return kinds[name](*rest, **kw)


def _describe(node: _Node, paths: Mapping[int, str]) -> str:
    if node.module is not None:
        return f"{type(node.module).__name__} ({paths.get(id(node.module), '?')})"
    if node.label in ("add", "__add__", "__iadd__", "add_", "__radd__"):
        return "an addition (a residual stream)"
    if node.label in ("cat", "concat", "stack"):
        return "a concatenation"
    return f"{node.label}()"


def _classify(
    prod_node: _Node, model: nn.Module, paths: Mapping[int, str], calls: Mapping[int, int], out_ids: set[int]
) -> Site | str:
    """A site for this producer call, or the reason it is not one."""
    prod = prod_node.module
    assert isinstance(prod, (nn.Linear, nn.Conv2d))
    n = prod.weight.shape[0]
    if isinstance(prod, nn.Conv2d) and prod.groups != 1:
        return f"a grouped or depthwise convolution (groups={prod.groups})"
    node, norm = prod_node, None
    if any(id(t) in out_ids for t in node.outputs):
        return "an output layer (its output is the model's)"
    if len(node.users) == 1 and isinstance(node.users[0].module, nn.modules.batchnorm._BatchNorm):
        bn = node.users[0].module
        if bn.num_features == n and calls.get(id(bn), 0) == 1:
            norm, node = bn, node.users[0]
    if len(node.users) != 1:
        if not node.users:
            return "its output is not read"
        return f"its output is read by {len(node.users)} operations before a ReLU"
    act = node.users[0]
    if not _is_relu(act):
        what = _describe(act, paths)
        return f"its output goes to {what}, not to a ReLU"
    consumers: list[SiteConsumer] = []
    heads: list[bool] = []  # per traced consumer: its output is the model's
    frontier: list[tuple[_Node, tuple[nn.Module, ...]]] = [(act, ())]  # a node carrying the units, pools so far
    chains: set[tuple[int, ...]] = set()
    pools: tuple[nn.Module, ...] = ()
    seen: set[int] = set()
    while frontier:
        cur, chain = frontier.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        if any(id(t) in out_ids for t in cur.outputs):
            return "its ReLU output is the model's output"
        for user in cur.users:
            mod = user.module
            shape = cur.outputs[0].shape
            per_unit = int(math.prod(shape[1:])) // n if len(shape) >= 2 and shape[1:].numel() % n == 0 else 0
            if isinstance(mod, nn.Linear):
                if len(shape) != 2 or mod.in_features != shape[1] or per_unit < 1 or calls.get(id(mod), 0) != 1:
                    return f"its ReLU output reaches {_describe(user, paths)} in a shape it cannot widen"
                kind: Literal["conv", "flatten", "pool"] = "flatten" if per_unit > 1 else "pool"
                path = paths[id(mod)]
                consumers += [SiteConsumer(p, kind, per_unit) for p in _siblings(model, path, mod.in_features)]
                heads.append(any(id(t) in out_ids for t in user.outputs))
                chains.add(tuple(map(id, chain)))
                pools = chain
            elif isinstance(mod, nn.Conv2d):
                if mod.groups != 1 or len(shape) != 4 or shape[1] != n or calls.get(id(mod), 0) != 1:
                    return f"its ReLU output reaches {_describe(user, paths)}, which cannot take new channels"
                consumers.append(SiteConsumer(paths[id(mod)], "conv", 1))
                heads.append(any(id(t) in out_ids for t in user.outputs))
                chains.add(tuple(map(id, chain)))
                pools = chain
            elif _passes(user):
                out = user.outputs[0].shape
                keeps = (len(out) >= 2 and out[0] == shape[0]) and (
                    (len(out) == 4 and out[1] == n) or (len(out) == 2 and out[1] % n == 0 and len(shape) in (2, 4))
                )
                if len(shape) == 4 and len(out) == 2 and out[1] != math.prod(shape[1:]):
                    keeps = False
                if not keeps:
                    return f"its ReLU output is reshaped by {_describe(user, paths)} to {tuple(out)}"
                pool = _as_pool(user)
                frontier.append((user, chain + (pool,) if pool is not None else chain))
            else:
                return f"its ReLU output feeds {_describe(user, paths)}"
    if not consumers:
        return "nothing reads its ReLU output"
    # a layer both read directly and through a pooled path would need two kinds of slices
    if len({c.path for c in consumers}) != len(consumers):
        return "a consumer reads its units twice"
    positions = math.prod(prod_node.outputs[0].shape[2:]) if prod_node.outputs[0].dim() == 4 else 1
    return Site(
        paths[id(prod)],
        paths[id(norm)] if norm is not None else None,
        tuple(consumers),
        positions,
        pools if len(chains) == 1 else None,
        all(heads),
    )


@torch.no_grad()
def find_sites(model: nn.Module, x: Tensor, task_labels: Tensor | int | None = None) -> SiteMap:
    """Trace ``model`` on the batch ``x`` (at least two samples) and classify every ``Linear`` and
    ``Conv2d``: a :class:`Site` or a :class:`NotASite` with its reason.

    The model runs in eval mode (put back after) so the trace changes no batch-norm statistics.
    """
    if not isinstance(model, nn.Module):
        raise GrowthError(f"sites are found in an nn.Module, got {type(model).__name__}")
    if isinstance(task_labels, Tensor) and task_labels.dim() == 1 and task_labels.numel() == x.shape[0]:
        # one task's samples: the trace takes a multi-task model's single-task path
        x, task_labels = x[task_labels == task_labels[0]], int(task_labels[0])
    if x.shape[0] < 2:
        x = torch.cat([x, x])  # a batch of one hides which dimension is the batch (squeeze)
    was = {m: m.training for m in model.modules()}
    model.eval()
    from clgrow import compute

    tracer = _Tracer(model)
    try:
        with tracer, compute.paused():  # a measurement of the model, not compute a run spends
            out = call_model(model, x, task_labels)
    finally:
        tracer.close()
        for m, t in was.items():
            m.training = t
    out_ids = {id(t) for t in tree_leaves(out) if isinstance(t, Tensor)}
    calls: dict[int, int] = {}
    for node in tracer.nodes:
        if node.module is not None:
            calls[id(node.module)] = calls.get(id(node.module), 0) + 1
    sites: list[Site] = []
    refused: list[NotASite] = []
    done: set[int] = set()
    for node in tracer.nodes:
        mod = node.module
        if not isinstance(mod, (nn.Linear, nn.Conv2d)) or id(mod) in done:
            continue
        done.add(id(mod))
        path = tracer.paths[id(mod)]
        if calls[id(mod)] != 1:
            refused.append(NotASite(path, f"called {calls[id(mod)]} times in one forward pass"))
            continue
        found = _classify(node, model, tracer.paths, calls, out_ids)
        if isinstance(found, Site):
            sites.append(found)
        else:
            refused.append(NotASite(path, found))
    for path, mod in model.named_modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d)) and id(mod) not in done:
            if not any(path in {c.path for c in s.consumers} for s in sites):
                refused.append(NotASite(path, "not called in the traced forward pass"))
    return SiteMap(tuple(sites), tuple(refused))
