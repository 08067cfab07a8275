"""Growth sites found in any ``nn.Module`` by tracing one forward pass.

The model runs once on an example batch while every tensor is followed: module calls through
forward hooks on the leaf modules, functional calls (``F.relu``, ``torch.flatten``, ``+``) through a
``TorchFunctionMode``. The trace follows tensors, not modules, so a ``ReLU`` module called twice
(torchvision's ``BasicBlock``), functional activations (Avalanche's ``SlimResNet18``) and
data-dependent routing (multi-head classifiers) are seen as they run.

Every producer (``Linear`` or convolution) starts a *channel space*: its output units. Operations
that act channel by channel keep a tensor in its space (ReLU, batch norm, pooling, dropout,
flattening that keeps each channel's entries together); an addition (or any element-wise
arithmetic) of two tensors joins their spaces. A space is one growth **site**: all its producers
(one for a plain layer; a residual stream's stem, blocks and projections), its batch norms and every
layer that reads it widen together, so new units enter with zero reading weights and the function
is unchanged exactly. A space that reaches anything else (another activation, a concatenation, a
layer norm, the model's output, a grouped convolution, a tensor that does not widen) is not a site,
and each of its producers is named with the reason. A plain site (no addition) must reach a ReLU.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves
from torch.utils.hooks import RemovableHandle

from clgrow.errors import GrowthError
from clgrow.surgery import is_norm, is_producer, kind_of, weight_of

__all__ = [
    "Member",
    "SiteConsumer",
    "Site",
    "NotASite",
    "SiteMap",
    "find_sites",
    "call_model",
    "call_args",
    "FIXED",
    "readers_of",
    "still_valid",
]

#: The attribute a model keeps the paths of its submodules that never grow under (a builder's
#: backbone): their producers are named as fixed, never sites.
FIXED = "_clgrow_fixed"

_RELU = frozenset({"relu", "relu_"})
#: Functions and methods that keep each channel's values together (pooling, dropout, copies).
_PASS_FUNCS = frozenset(
    "dropout dropout1d dropout2d dropout3d feature_dropout alpha_dropout max_pool1d max_pool2d "
    "max_pool3d _max_pool2d max_pool2d_with_indices avg_pool1d avg_pool2d avg_pool3d "
    "adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d adaptive_max_pool2d "
    "_adaptive_max_pool2d adaptive_max_pool2d_with_indices contiguous clone detach ".split()
)
_RESHAPE_FUNCS = frozenset({"flatten", "view", "reshape", "squeeze"})
_REDUCE_FUNCS = frozenset({"mean", "sum", "amax"})
_ARITH_FUNCS = frozenset(
    "add add_ __add__ __iadd__ __radd__ sub sub_ __sub__ __isub__ __rsub__ mul mul_ __mul__ __imul__ "
    "__rmul__ div div_ __truediv__ __itruediv__ ".split()
)
_POOLS: dict[str, Callable[..., nn.Module]] = {
    "max_pool2d": nn.MaxPool2d,
    "avg_pool2d": nn.AvgPool2d,
    "adaptive_avg_pool2d": nn.AdaptiveAvgPool2d,
    "adaptive_max_pool2d": nn.AdaptiveMaxPool2d,
}
_PASS_MODULES = tuple(
    getattr(nn, name)
    for name in (
        "Dropout Dropout1d Dropout2d Dropout3d Identity MaxPool1d "
        "MaxPool2d MaxPool3d AvgPool1d AvgPool2d AvgPool3d AdaptiveAvgPool1d "
        "AdaptiveAvgPool2d AdaptiveAvgPool3d AdaptiveMaxPool2d"
    ).split()
)
#: Calls the trace ignores: they read a tensor's metadata and produce no tensor the model uses.
_METADATA = frozenset({"size", "dim", "shape", "__get__", "numel", "device", "dtype", "__len__", "is_contiguous"})


@dataclass(frozen=True)
class SiteConsumer:
    """A layer that reads a site's units: its path and how it reads them.

    ``kind`` is ``"conv"`` (input channels of a convolution), ``"flatten"`` (``block`` consecutive
    columns per unit of a ``Linear``) or ``"pool"`` (one column per unit). ``head``: its output is
    the model's.
    """

    path: str
    kind: Literal["conv", "flatten", "pool"]
    block: int = 1
    head: bool = False


@dataclass(frozen=True)
class Member:
    """One producer of a site's units: its path, the batch norm right after it, and its output
    positions per sample (``H·W`` of a 2-d convolution; 1 for a ``Linear``)."""

    producer: str
    norm: str | None = None
    positions: int = 1


@dataclass(frozen=True)
class Site:
    """Units that grow together.

    Attributes
    ----------
    members : tuple of Member
        The producers, in the order they ran: one for a plain layer, several for a residual stream
        (all producers into an addition chain).
    consumers : tuple of SiteConsumer
        Every layer the trace saw read the units (the task heads it did not take are found from
        the traced one's place in a ``ModuleDict``: :func:`readers_of`).
    norms : tuple of str
        Batch norms on the units other than those right after a member (a pre-activation block's).
    pools : tuple of nn.Module, or None
        A plain site's pooling between its ReLU and its consumers, in order (``None`` when
        consumers are reached through different poolings).
    reads_out : bool
        Every consumer is an output layer: the site feeds the head.
    stream : bool
        Its members are tied by additions (a residual stream).
    """

    members: tuple[Member, ...]
    consumers: tuple[SiteConsumer, ...]
    norms: tuple[str, ...] = ()
    pools: tuple[nn.Module, ...] | None = ()
    reads_out: bool = False
    stream: bool = False

    @property
    def producers(self) -> tuple[str, ...]:
        """The members' paths."""
        return tuple(m.producer for m in self.members)


@dataclass(frozen=True)
class NotASite:
    """A ``Linear`` or convolution that cannot grow, and why."""

    module: str
    reason: str


@dataclass(frozen=True)
class SiteMap:
    """What :func:`find_sites` found: the sites, in the order they first run, and the layers that are not."""

    sites: tuple[Site, ...]
    refused: tuple[NotASite, ...]

    def describe(self) -> str:
        """One line per site with its producers and consumers, then every layer that is not one."""
        lines = [f"{len(self.sites)} growth site(s):"]
        for i, s in enumerate(self.sites):
            made = " + ".join(m.producer + (f" -> {m.norm}" if m.norm else "") for m in s.members)
            reads = ", ".join(f"{c.path} ({c.kind})" for c in s.consumers)
            what = "residual stream" if s.stream else "ReLU"
            lines.append(f"  site {i}: {made} -> {what} -> {reads}")
        if self.refused:
            lines.append("not sites:")
            lines += [f"  {r.module}: {r.reason}" for r in self.refused]
        return "\n".join(lines)


# --------------------------------------------------------------------------- recording
@dataclass(eq=False)
class _Node:
    label: str
    module: nn.Module | None
    inputs: list[Tensor]
    outputs: list[Tensor]
    call: tuple[Any, Any] = ((), {})  # a functional call's arguments (its pooling settings, dims)


def _name(func: Any) -> str:
    return str(getattr(func, "__name__", func))


class _Tracer(TorchFunctionMode):
    """Records leaf-module calls (by hooks) and functional calls outside them, in order."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
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
        self.nodes.append(_Node(label, mod, ins, outs, call))
        self.keep += ins + outs

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
    Avalanche's ``MultiTaskModule``)."""
    if hasattr(model, "forward_single_task"):
        if task_labels is None:
            task_labels = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        return (x, task_labels)
    return (x,)


def call_model(model: nn.Module, x: Tensor, task_labels: Tensor | int | None) -> Any:
    """``model(x)``, or ``model(x, task_labels)`` for a multi-task model."""
    return model(*call_args(model, x, task_labels))


# --------------------------------------------------------------------------- channel spaces
@dataclass(eq=False)
class _Space:
    """Units one or more producers make, as the trace sees them flow."""

    width: int
    members: list[tuple[_Node, nn.Module]] = field(default_factory=list)
    norms: list[tuple[nn.Module, _Node | None]] = field(default_factory=list)  # (norm, the member node it follows)
    consumers: list[tuple[nn.Module, str, int, _Node, tuple[nn.Module, ...]]] = field(default_factory=list)
    relus: int = 0
    adds: int = 0
    bad: str | None = None
    first_use: str | None = None  # the first operation the units met (for the reason of a non-ReLU layer)
    parent: _Space | None = None

    def root(self) -> _Space:
        s = self
        while s.parent is not None:
            s = s.parent
        return s

    def fail(self, reason: str) -> None:
        if self.bad is None:
            self.bad = reason

    def note_use(self, what: str) -> None:
        if self.first_use is None:
            self.first_use = what


def _join(a: _Space, b: _Space) -> _Space:
    a, b = a.root(), b.root()
    if a is b:
        return a
    b.parent = a
    a.members += b.members
    a.norms += b.norms
    a.consumers += b.consumers
    a.relus += b.relus
    a.adds += b.adds
    a.first_use = a.first_use or b.first_use
    if b.bad is not None:
        a.fail(b.bad)
    if a.width != b.width:
        a.fail(f"an addition joins {a.width} units with {b.width}")
    return a


@dataclass(frozen=True)
class _At:
    """Where a tensor's values live: its space, the columns per unit of a flattened layout (1: the
    units along dimension 1), the poolings met since the units' ReLU, and whether a ReLU was met."""

    space: _Space
    block: int = 1
    pools: tuple[nn.Module, ...] = ()
    relu: bool = False


def _describe(node: _Node, paths: Mapping[int, str]) -> str:
    if node.module is not None:
        return f"{type(node.module).__name__} ({paths.get(id(node.module), '?')})"
    if node.label in ("cat", "concat", "stack"):
        return "a concatenation"
    return f"{node.label}()"


def _as_pool(node: _Node) -> nn.Module | None:
    """A pooling node as a module (a functional pooling rebuilt with its settings)."""
    if node.module is not None:
        pooling = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
        return node.module if isinstance(node.module, pooling) else None
    name = node.label.lstrip("_").removesuffix("_with_indices")
    if name not in _POOLS:
        return None
    args, kwargs = node.call
    kw = {k: v for k, v in kwargs.items() if k not in ("input", "return_indices")}
    return _POOLS[name](*list(args[1:]), **kw)


def _reduced_dims(node: _Node, ndim: int) -> set[int] | None:
    """The dimensions a ``mean``/``sum``/``amax`` call reduces (``None``: all of them)."""
    args, kwargs = node.call
    dims = kwargs.get("dim", args[1] if len(args) > 1 else None)
    if dims is None:
        return None
    dims = [dims] if isinstance(dims, int) else list(dims)
    return {d % ndim for d in dims}


class _Spaces:
    """Follows every traced tensor's units through the recorded operations."""

    def __init__(self, tracer: _Tracer, calls: Mapping[int, int]) -> None:
        self.paths = tracer.paths
        self.calls = calls
        self.at: dict[int, _At] = {}
        self.spaces: list[_Space] = []

    def _set(self, t: Tensor, at: _At) -> None:
        self.at[id(t)] = at

    def run(self, nodes: list[_Node]) -> None:
        self.uses = Counter(id(t) for node in nodes for t in node.inputs)
        for node in nodes:
            spaced = [(t, self.at[id(t)]) for t in node.inputs if id(t) in self.at]
            mod = node.module
            if mod is not None and is_producer(mod):
                for t, at in spaced:
                    self._consume(node, t, at)
                self._produce(node)
            elif spaced:
                self._follow(node, spaced)

    def _produce(self, node: _Node) -> None:
        mod = node.module
        assert mod is not None
        out = node.outputs[0]
        space = _Space(int(weight_of(mod).shape[0]))
        space.members.append((node, mod))
        self.spaces.append(space)
        if getattr(mod, "groups", 1) != 1:
            space.fail(f"a grouped or depthwise convolution (groups={getattr(mod, 'groups', 1)})")
        elif out.dim() < 2 or out.shape[1] != space.width:
            space.fail(f"applied to inputs of shape {tuple(node.inputs[0].shape)}: its units are not along dimension 1")
        self._set(out, _At(space))

    def _consume(self, node: _Node, t: Tensor, at: _At) -> None:
        mod = node.module
        assert mod is not None
        space = at.space.root()
        what = _describe(node, self.paths)
        space.note_use(what)
        n = space.width
        w = weight_of(mod)
        if self.calls.get(id(mod), 0) != 1:
            space.fail(f"its units reach {what}, which is called {self.calls.get(id(mod), 0)} times")
        elif isinstance(mod, nn.Linear):
            if t.dim() != 2 or t.shape[1] != n * at.block or mod.in_features != t.shape[1]:
                space.fail(f"its ReLU output reaches {what} in a shape it cannot widen")
            else:
                kind = "flatten" if at.block > 1 else "pool"
                space.consumers.append((mod, kind, at.block, node, at.pools))
        elif getattr(mod, "groups", 1) != 1 or at.block != 1 or t.dim() != w.dim() or t.shape[1] != n:
            space.fail(f"its ReLU output reaches {what}, which cannot take new channels")
        else:
            space.consumers.append((mod, "conv", 1, node, at.pools))

    def _follow(self, node: _Node, spaced: list[tuple[Tensor, _At]]) -> None:
        mod, label = node.module, node.label
        t, at = spaced[0]
        space = at.space.root()
        what = _describe(node, self.paths)
        out = node.outputs[0]
        same = out.dim() >= 2 and out.shape[0] == t.shape[0]
        if mod is not None and is_norm(mod):
            space.note_use(what)
            if self.calls.get(id(mod), 0) != 1 or at.block != 1 or t.shape[1] != space.width:
                space.fail(f"its units reach {what}, which cannot take new channels")
            else:
                # a member's own norm reads all of its output (no other path bypasses it)
                only = self.uses[id(t)] == 1
                follows = next((n for n, _ in space.members if only and any(o is t for o in n.outputs)), None)
                space.norms.append((mod, follows))
                self._set(out, _At(space, 1, at.pools, at.relu))
            return
        if isinstance(mod, nn.ReLU) or (mod is None and label in _RELU):
            space.note_use("a ReLU")
            space.relus += 1
            self._set(out, _At(space, at.block, (), True))
            return
        if (mod is not None and isinstance(mod, _PASS_MODULES)) or (mod is None and label in _PASS_FUNCS):
            space.note_use(what)
            pool = _as_pool(node)
            keeps = same and (out.shape[1] == t.shape[1]) and (at.block == 1 or out.dim() == 2)
            if not keeps or (pool is not None and at.block != 1):
                space.fail(f"its ReLU output is reshaped by {what} to {tuple(out.shape)}")
                return
            self._set(out, _At(space, at.block, at.pools + ((pool,) if pool is not None else ()), at.relu))
            return
        if isinstance(mod, nn.Flatten) or (mod is None and label in _RESHAPE_FUNCS):
            space.note_use(what)
            per = math.prod(t.shape[2:]) if t.dim() > 2 else 1
            if same and out.dim() == 2 and out.shape[1] == t.shape[1] * per and at.block == 1:
                self._set(out, _At(space, per, at.pools, at.relu))
            elif same and tuple(out.shape) == tuple(t.shape):
                self._set(out, at)
            elif same and out.dim() >= 2 and out.shape[1] == t.shape[1] and at.block == 1 and out.numel() == t.numel():
                self._set(out, _At(space, 1, at.pools, at.relu))  # size-1 dimensions squeezed or added
            else:
                space.fail(f"its ReLU output is reshaped by {what} to {tuple(out.shape)}")
            return
        if mod is None and label in _REDUCE_FUNCS:
            dims = _reduced_dims(node, t.dim())
            space.note_use(what)
            if dims is not None and 0 not in dims and 1 not in dims and at.block == 1:
                self._set(out, _At(space, 1, at.pools, at.relu))
            else:
                space.fail(f"its ReLU output feeds {what}, which mixes units")
            return
        if mod is None and label in _ARITH_FUNCS:
            self._arith(node, spaced, what)
            return
        for _, a in spaced:
            s = a.space.root()
            s.note_use(what)
            s.fail(f"its ReLU output feeds {what}" if a.relu else f"its output goes to {what}, not to a ReLU")

    def _arith(self, node: _Node, spaced: list[tuple[Tensor, _At]], what: str) -> None:
        """Element-wise arithmetic: tensors of the same layout join their spaces (a residual
        stream); a scalar is harmless; any other tensor does not widen with the units."""
        out = node.outputs[0]
        t0, a0 = spaced[0]
        space = a0.space.root()
        space.note_use("an addition" if "add" in node.label else what)
        ids = {id(t) for t, _ in spaced}
        for t in node.inputs:
            if id(t) not in ids and t.numel() != 1:
                space.fail(f"combined by {node.label}() with a tensor of shape {tuple(t.shape)} that does not widen")
        for t, a in spaced[1:]:
            if tuple(t.shape) != tuple(t0.shape) or a.block != a0.block:
                space.fail(f"an addition joins it with a tensor of shape {tuple(t.shape)}")
            space = _join(space, a.space)
        if len(spaced) > 1:
            space.adds += 1
        if tuple(out.shape) != tuple(t0.shape):
            space.fail(f"{what} broadcasts it to {tuple(out.shape)}")
        self._set(out, _At(space, a0.block, (), any(a.relu for _, a in spaced)))


def readers_of(model: nn.Module, site: Site) -> list[tuple[str, SiteConsumer]]:
    """``(path, consumer)`` of every layer that reads ``site`` in ``model`` as it is now: the traced
    consumers, and for a ``Linear`` its siblings (the same sub-path under every other entry of the
    nearest ``ModuleDict`` or ``ModuleList`` above it, reading the same width, when it is an output
    layer: task heads added since the trace, or not taken by it)."""
    out: dict[str, SiteConsumer] = {}
    for c in site.consumers:
        mod = model.get_submodule(c.path)
        found = _siblings(model, c.path, mod.in_features) if isinstance(mod, nn.Linear) and c.head else [c.path]
        for p in found:
            out.setdefault(p, c)
    return list(out.items())


def still_valid(model: nn.Module, found: SiteMap) -> bool:
    """Whether every producer, norm and consumer ``found`` names is still in ``model`` as a layer of
    its kind (widths may have changed: growth and pruning keep a site map valid)."""
    for site in found.sites:
        paths = [*site.producers, *site.norms, *(m.norm for m in site.members if m.norm)]
        paths += [c.path for c in site.consumers]
        for path in paths:
            try:
                mod = model.get_submodule(path)
            except AttributeError:
                return False
            if not (is_producer(mod) or is_norm(mod)):
                return False
    return True


def _siblings(model: nn.Module, path: str, width: int) -> list[str]:
    """Layers that play ``path``'s part for other tasks: the same sub-path under every other entry
    of the nearest ``ModuleDict`` or ``ModuleList`` above it, reading the same ``width``."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, -1, -1):
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


def _site(space: _Space, paths: Mapping[int, str], out_ids: set[int]) -> Site | str:
    """The site a finished space is, or why it is not one."""
    if space.bad is not None:
        return space.bad
    for node, _ in space.members:
        if any(id(t) in out_ids for t in node.outputs):
            return "an output layer (its output is the model's)"
    stream = space.adds > 0
    if not stream and space.relus == 0:
        if space.first_use is None:
            return "its output is not read"
        return f"its output goes to {space.first_use}, not to a ReLU"
    if not space.consumers:
        return "nothing reads its ReLU output"
    consumers: list[SiteConsumer] = []
    chains = set()
    for mod, kind, block, node, pools in space.consumers:
        head = any(id(t) in out_ids for t in node.outputs)
        consumers.append(SiteConsumer(paths[id(mod)], kind, block, head))  # type: ignore[arg-type]
        chains.add(tuple(map(id, pools)))
    if len({c.path for c in consumers}) != len(consumers):
        return "a consumer reads its units twice"
    member_nodes = {id(n) for n, _ in space.members}
    members = []
    for node, mod in space.members:
        norm = next((paths[id(nm)] for nm, follows in space.norms if follows is node), None)
        out = node.outputs[0]
        members.append(Member(paths[id(mod)], norm, math.prod(out.shape[2:]) if out.dim() > 2 else 1))
    others = tuple(paths[id(nm)] for nm, follows in space.norms if follows is None or id(follows) not in member_nodes)
    return Site(
        tuple(members),
        tuple(consumers),
        others,
        space.consumers[0][4] if len(chains) == 1 and not stream else None,
        all(c.head for c in consumers),
        stream,
    )


@torch.no_grad()
def find_sites(
    model: nn.Module, x: Tensor, task_labels: Tensor | int | None = None, fixed: Iterable[str] | None = None
) -> SiteMap:
    """Trace ``model`` on the batch ``x`` and classify every ``Linear`` and convolution: a member
    of a :class:`Site` or a :class:`NotASite` with its reason.

    ``fixed``: paths of submodules whose producers never grow (default: the model's own list,
    ``model._clgrow_fixed``, which clgrow's builders set for a backbone). The model runs in eval
    mode (put back after), so the trace changes no batch-norm statistics.
    """
    if not isinstance(model, nn.Module):
        raise GrowthError(f"sites are found in an nn.Module, got {type(model).__name__}")
    if isinstance(task_labels, Tensor) and task_labels.dim() == 1 and task_labels.numel() == x.shape[0]:
        # one task's samples: the trace takes a multi-task model's single-task path
        x, task_labels = x[task_labels == task_labels[0]], int(task_labels[0])
    if x.shape[0] < 2:
        x = torch.cat([x, x])  # a batch of one hides which dimension is the batch (squeeze)
    frozen = tuple(getattr(model, FIXED, ()) if fixed is None else fixed)
    was = {m: m.training for m in model.modules()}
    model.eval()
    from clgrow.measure import compute

    tracer = _Tracer(model)
    try:
        with tracer, compute.paused():  # a measurement of the model, not compute a run spends
            out = call_model(model, x, task_labels)
    except GrowthError:
        raise
    except Exception as err:  # the model's own error on this batch: the data, not clgrow
        raise GrowthError(
            f"{type(model).__name__} failed on a batch of shape {tuple(x.shape)} ({x.dtype}) while its growth "
            f"sites were traced ({type(err).__name__}: {err}); give it data of the shape and type it takes"
        ) from None
    finally:
        tracer.close()
        for m, t in was.items():
            m.training = t
    out_ids = {id(t) for t in tree_leaves(out) if isinstance(t, Tensor)}
    calls: dict[int, int] = {}
    for node in tracer.nodes:
        if node.module is not None:
            calls[id(node.module)] = calls.get(id(node.module), 0) + 1
    follow = _Spaces(tracer, calls)
    follow.run(tracer.nodes)
    paths = tracer.paths
    for t in tree_leaves(out):
        at = follow.at.get(id(t)) if isinstance(t, Tensor) else None
        if at is not None and not any(any(o is t for o in n.outputs) for n, _ in at.space.root().members):
            at.space.root().fail("its ReLU output is the model's output")
    found: list[tuple[int, Site]] = []
    refused: list[NotASite] = []
    named: set[int] = set()
    order = {id(n): i for i, n in enumerate(tracer.nodes)}
    roots: list[_Space] = []
    for space in follow.spaces:
        if space.root() not in roots:
            roots.append(space.root())
    for space in roots:
        space.members.sort(key=lambda member: order[id(member[0])])
        for _, mod in space.members:
            if calls[id(mod)] != 1:
                space.fail(f"called {calls[id(mod)]} times in one forward pass")
            path = paths[id(mod)]
            if any(path == f or path.startswith(f + ".") for f in frozen):
                space.fail("left out of growth by the model's builder (a fixed backbone)")
        site = _site(space, paths, out_ids)
        mods = list(dict.fromkeys(mod for _, mod in space.members))
        named.update(id(m) for m in mods)
        if isinstance(site, Site):
            found.append((min(order[id(n)] for n, _ in space.members), site))
        else:
            refused += [NotASite(paths[id(m)], site) for m in mods]
    read = {c.path for _, s in found for c in s.consumers}
    for path, mod in model.named_modules():
        if is_producer(mod) and id(mod) not in named and path not in read:
            refused.append(NotASite(path, _computed(mod) or "not called in the traced forward pass"))
    sites = []
    by_path = dict(model.named_modules())
    owners: dict[int, list[str]] = {}  # every tensor's names: a tensor with two is tied
    for path, mod in by_path.items():
        for name, t in mod.named_parameters(recurse=False):
            owners.setdefault(id(t), []).append(f"{path}.{name}".strip("."))
    for _, site in sorted(found, key=lambda p: p[0]):
        why = _unknown_reader(model, by_path, owners, site, calls)
        if why is None:
            sites.append(site)
        else:
            refused += [NotASite(p, why) for p in site.producers]
    return SiteMap(tuple(sites), tuple(refused))


def _computed(mod: nn.Module) -> str | None:
    """Why ``mod``'s weight is not a tensor clgrow can widen (a parametrization, legacy weight norm)."""
    from torch.nn.utils import parametrize

    if parametrize.is_parametrized(mod):
        return "its weight is parametrized (torch.nn.utils.parametrize, weight_norm): clgrow cannot widen a parametrization"
    w = getattr(mod, "weight", None)
    if hasattr(mod, "weight_g") or (
        isinstance(w, Tensor) and not isinstance(w, nn.Parameter) and "weight" not in mod._buffers
    ):
        return "its weight is computed before each call (legacy weight_norm or a hook): clgrow cannot widen it"
    return None


def _unknown_reader(
    model: nn.Module,
    mods: Mapping[str, nn.Module],
    owners: Mapping[int, list[str]],
    site: Site,
    calls: Mapping[int, int],
) -> str | None:
    """Why ``site`` cannot grow soundly: a layer of it is parametrized or shares a tensor with
    another, or a layer the trace did not call takes the units' width and may read them; ``None``
    when nothing can. (A buffer combined with the units is met by the trace itself.)"""
    width = int(weight_of(mods[site.producers[0]]).shape[0])
    if width == 0:
        return "it has no units (width 0): growth widens layers that have some"
    readers = dict(readers_of(model, site))
    known = [*site.producers, *site.norms, *(m.norm for m in site.members if m.norm), *readers]
    for path in known:
        mod = mods[path]
        why = _computed(mod)
        if why:
            return f"{path}: {why}"
        for name, t in mod.named_parameters(recurse=False):
            tied = [o for o in owners[id(t)] if o != f"{path}.{name}".strip(".")]
            if tied:
                return f"{path}.{name} is the same tensor as {tied[0]} (growth would untie them)"
    for path, mod in mods.items():
        if path in known:
            continue
        kind = kind_of(mod)
        if kind is not None and kind.producer and id(mod) not in calls and getattr(mod, str(kind.in_size)) == width:
            return (
                f"{path} ({type(mod).__name__}, {width} inputs) was not called in the traced forward pass and may read "
                f"its {width} units (a branch or head taken on other data); trace on data that takes it, or leave "
                "that layer out of the model"
            )
    return None
