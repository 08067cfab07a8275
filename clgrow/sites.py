"""The one interface growth methods use: a module's sites, grown in place and run with substitutions.

:class:`Growable` declares what every extender, distributor, pruning method, reset and metric needs
of a model; :class:`GrowableModule` provides it for any ``nn.Module`` at the sites
:func:`clgrow.discovery.find_sites` found (clgrow's own builders make plain modules too). The module's
own ``forward`` is the only forward pass: SWE's coupled weights are substituted through
``torch.func.functional_call``; SVoD's gates and activity capture are forward hooks on each
site's producers (or their norms) and, for a residual stream, on the layers that read it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from clgrow import surgery
from clgrow.data import check_loader, unpack
from clgrow.discovery import SiteMap, call_args, call_model, find_sites, readers_of, still_valid
from clgrow.errors import GrowthError
from clgrow.surgery import Norm, Producer

__all__ = [
    "Growable",
    "GrowableModule",
    "Rows",
    "Reader",
    "ModelSnapshot",
    "as_growable",
    "growable_from_loader",
    "known_sites",
    "snapshot_module",
    "restore_module",
    "channel_activity",
]


@dataclass(frozen=True)
class Rows:
    """One producer of a site's units, as methods use it: a unit is a row of its weight.

    Attributes
    ----------
    producer : nn.Linear or nn.Conv*d
    norm : batch norm, optional
        The batch norm right after it (a SVoD gate multiplies its output).
    positions : int
        Output positions per sample.
    """

    producer: Producer
    norm: Norm | None = None
    positions: int = 1

    @property
    def weight(self) -> Tensor:
        return self.producer.weight

    @property
    def bias(self) -> Tensor:
        """The bias (every grown producer has one: :meth:`GrowableModule.prepare` gives it)."""
        b = self.producer.bias
        if b is None:
            raise GrowthError(f"{type(self.producer).__name__} has no bias: prepare() gives it one")
        return b

    @property
    def fan_in(self) -> int:
        """Entries of one unit's row, ``m`` (``c_in·∏kernel`` for a filter)."""
        return math.prod(self.weight.shape[1:])

    def rows(self) -> Tensor:
        """The weight as rows ``(n, m)``: a view (a filter is one row)."""
        w = self.weight
        return w.view(w.shape[0], -1)


@dataclass(frozen=True)
class Reader:
    """A layer that reads a site's units.

    Attributes
    ----------
    module : nn.Linear or nn.Conv*d
    kind : {"conv", "flatten", "pool"}
        Input channels of a convolution, ``block`` columns per unit of a ``Linear``, or one.
    block : int
    head : bool
        Its output is the model's (a head; with task heads, one of them).
    site : int or None
        The site whose producer it is (``None``: it does not grow).
    """

    module: Producer
    kind: Literal["conv", "flatten", "pool"]
    block: int = 1
    head: bool = False
    site: int | None = None

    @property
    def weight(self) -> Tensor:
        return self.module.weight

    @property
    def bias(self) -> Tensor | None:
        return self.module.bias

    def view(self, n: int) -> Tensor:
        """The weight per unit read, ``(p, n, r)`` (a view)."""
        return surgery.unit_view(self.weight, n)


@runtime_checkable
class Growable(Protocol):
    """What growth methods need of a model: its sites (hidden *layers* ``0..L-1``), their units'
    producers, norms and readers, their cohorts, growth in place, and a forward pass with
    substitutions. :class:`GrowableModule` is the implementation for any ``nn.Module``."""

    training: bool

    @property
    def num_hidden_layers(self) -> int: ...
    @property
    def hidden_sizes(self) -> list[int]: ...
    @property
    def growth_steps(self) -> Tensor: ...
    @property
    def heads_per_task(self) -> bool: ...
    def members(self, layer: int) -> list[Rows]: ...
    def consumers(self, layer: int) -> list[Reader]: ...
    def norms(self, layer: int) -> list[Norm]: ...
    def pool(self, layer: int) -> nn.Module | None: ...
    def reads_out(self, layer: int) -> bool: ...
    def stream(self, layer: int) -> bool: ...
    def cohort(self, layer: int) -> Tensor: ...
    def set_cohort(self, layer: int, cohort: Tensor) -> None: ...
    def outgoing(self, layer: int, p: int = 1) -> Tensor: ...
    def check_layer(self, layer: int) -> None: ...
    def add_units(
        self,
        layer: int,
        weight: Tensor | Sequence[Tensor],
        bias: Tensor | Sequence[Tensor],
        out_weight: Tensor | Sequence[Tensor | None] | None = None,
        cohort: int | None = None,
    ) -> Tensor: ...
    def keep_units(self, layer: int, keep: Tensor, optimizer: torch.optim.Optimizer | None = None) -> None: ...
    def run(
        self,
        x: Tensor,
        task_labels: Tensor | int | None = None,
        *,
        weights: Mapping[Producer, tuple[Tensor, Tensor]] | None = None,
        gates: Mapping[int, Tensor] | None = None,
        capture: bool = False,
    ) -> tuple[Any, list[Tensor]]: ...
    def observe_activations(self, fn: Callable[[int, Tensor], None]) -> RemovableHandle: ...
    def macs_per_sample(self, x: Tensor | None = None) -> tuple[int, int]: ...
    def add_classes(self, n: int) -> None: ...
    def prepare(self) -> None: ...
    def snapshot(self) -> ModelSnapshot: ...
    def restore(self, snap: ModelSnapshot) -> None: ...
    def modules(self) -> Any: ...
    def parameters(self, recurse: bool = True) -> Any: ...
    def train(self, mode: bool = True) -> Any: ...
    def eval(self) -> Any: ...
    def zero_grad(self, set_to_none: bool = True) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


# ------------------------------------------------------------------ snapshots
@dataclass
class ModelSnapshot:
    """Everything needed to put a model back exactly as it was before a growth step.

    Parameter and buffer *objects* are kept (not only their values), so an optimizer holding
    references to them still points at the model's tensors after a restore.
    """

    params: list[tuple[nn.Module, str, nn.Parameter | None, Tensor | None, Tensor | None]] = field(default_factory=list)
    buffers: list[tuple[nn.Module, str, Tensor | None, Tensor | None]] = field(default_factory=list)
    shapes: list[tuple[nn.Module, dict[str, int]]] = field(default_factory=list)
    training: dict[nn.Module, bool] = field(default_factory=dict)


#: Shape attributes growth changes (of layers, norms, and containers that build heads from them).
_SHAPE_ATTRS = ("in_features", "out_features", "in_channels", "out_channels", "num_features")


def snapshot_module(module: nn.Module) -> ModelSnapshot:
    """Record ``module`` so that :func:`restore_module` undoes any growth, bit for bit: parameter
    and buffer objects with their values and gradients, shape attributes, train/eval flags."""
    snap = ModelSnapshot()
    for mod in module.modules():
        snap.training[mod] = mod.training
        for name, p in mod._parameters.items():
            value = None if p is None else p.detach().clone()
            grad = None if p is None or p.grad is None else p.grad.detach().clone()
            snap.params.append((mod, name, p, value, grad))
        for name, b in mod._buffers.items():
            snap.buffers.append((mod, name, b, None if b is None else b.detach().clone()))
        attrs = {a: getattr(mod, a) for a in _SHAPE_ATTRS if isinstance(getattr(mod, a, None), int)}
        if attrs:
            snap.shapes.append((mod, attrs))
    return snap


@torch.no_grad()
def restore_module(snap: ModelSnapshot) -> None:
    """Put back what :func:`snapshot_module` recorded (parameters and buffers a failed step added
    are dropped: the recorded dictionaries are restored whole)."""
    for mod in snap.training:
        for name in set(mod._parameters) - {name for m, name, *_ in snap.params if m is mod}:
            del mod._parameters[name]
        for name in set(mod._buffers) - {name for m, name, *_ in snap.buffers if m is mod}:
            del mod._buffers[name]
    for mod, name, p, value, grad in snap.params:
        if p is not None and value is not None:
            p.data = value
            p.grad = grad
        mod._parameters[name] = p
    for mod, name, b, value in snap.buffers:
        if b is not None and value is not None:
            b.data = value
        mod._buffers[name] = b
    for mod, attrs in snap.shapes:
        for attr, size in attrs.items():
            setattr(mod, attr, size)
    for mod, training in snap.training.items():
        mod.training = training


def channel_activity(h: Tensor) -> Tensor:
    """Mean of ``|h|`` over positions: ``(batch, C, *positions)`` -> ``(batch, C)`` (a ``(batch, n)``
    input is returned as it is). On post-ReLU maps it is 0 exactly when the channel is zero at
    every position, so dead and τ-dormant channels follow from it as units do."""
    if h.dim() == 2:
        return h
    if h.dim() < 2:
        raise ValueError(f"expected (batch, n, ...) activations, got shape {tuple(h.shape)}")
    return h.abs().flatten(2).mean(2)


def _read_activity(a: Tensor, n: int, block: int) -> Tensor:
    """What a reader of a site reads, as one value per unit and sample ``(batch, n)``."""
    if a.dim() == 2 and block > 1:
        return a.reshape(a.shape[0], n, block).abs().mean(2)
    return channel_activity(a).abs()


class _Handles(RemovableHandle):
    """One handle for several hooks."""

    def __init__(self, handles: list[RemovableHandle]) -> None:
        super().__init__(OrderedDict())
        self.handles = handles

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        super().remove()


class _Capture:
    """Every site's activity in one forward pass of a module, handed to ``emit(site, a)`` at its end:
    a plain site's ``|ReLU|`` of its producer (or norm), a channel's mean over positions; a
    residual stream's mean over what its readers read (those called on the whole batch). Its hooks
    observe nothing in a deep copy or a pickle of the module (SVoD's candidate copy, a checkpoint)."""

    def __init__(self, view: GrowableModule | None, emit: Callable[[int, Tensor], None] | None, detach: bool) -> None:
        self.view, self.emit, self.detach = view, emit, detach
        self.units: dict[int, list[Tensor]] = {}
        self.streams: dict[int, list[list[Tensor]]] = {}
        self.sizes: dict[int, int] = {}

    def __deepcopy__(self, memo: dict[int, Any]) -> _Capture:
        return _Capture(None, None, self.detach)

    def __getstate__(self) -> dict[str, Any]:
        return {"detach": self.detach}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(None, None, state["detach"])  # type: ignore[misc]

    def start(self, mod: nn.Module, args: Any) -> None:
        self.units.clear()
        self.streams.clear()

    def plain(self, i: int, mod: nn.Module, args: Any, z: Tensor) -> None:
        if self.view is not None:
            self.units.setdefault(i, []).append(channel_activity(torch.relu(z.detach() if self.detach else z)))

    def begin(self, i: int, mod: nn.Module, args: Any) -> None:
        if self.view is not None:
            self.streams.setdefault(i, []).append([])
            self.sizes[i] = args[0].shape[0]

    def read(self, i: int, block: int, mod: nn.Module, args: Any) -> None:
        a = args[0].detach() if self.detach else args[0]
        if self.view is not None and self.streams.get(i) and a.shape[0] == self.sizes.get(i):
            self.streams[i][-1].append(_read_activity(a, self.view.hidden_sizes[i], block))

    def finish(self, mod: nn.Module, args: Any, out: Any) -> None:
        if self.view is None or self.emit is None:
            return
        for i in range(len(self.view.sites)):
            if i in self.units:
                found = self.units[i]
                self.emit(i, torch.cat(found) if len(found) > 1 else found[0])
            elif self.streams.get(i):
                parts = [torch.stack(g).mean(0) for g in self.streams[i] if g]
                if parts:
                    self.emit(i, torch.cat(parts) if len(parts) > 1 else parts[0])
        self.units.clear()
        self.streams.clear()


class GrowableModule(nn.Module):
    """Any ``nn.Module`` with growth sites, through :class:`Growable`.

    The wrapped module is the one that grows: its layers get new rows and columns in place, its
    own ``forward`` (dropout, pooling, residual adds, task routing) runs unchanged. Each site's
    producers carry a ``clgrow_cohort`` buffer (the growth step that added each unit) and the
    module a ``clgrow_growth_steps`` buffer, so they follow it into checkpoints; a producer
    without a bias is given a zero one (see :meth:`prepare`). Wrapping changes nothing.

    Parameters
    ----------
    module : nn.Module
    sites : SiteMap
        From :func:`find_sites`; at least one site.
    """

    def __init__(self, module: nn.Module, sites: SiteMap) -> None:
        super().__init__()
        if not sites.sites:
            raise GrowthError(f"{type(module).__name__} has no growth site.\n{sites.describe()}")
        self.module = module
        self.site_map = sites
        self.sites = sites.sites
        mods = dict(module.named_modules())
        self._paths = {m: p for p, m in mods.items()}  # by module: a deep copy keeps it right
        index = {p: i for i, s in enumerate(self.sites) for p in s.producers}
        self._members = [
            [Rows(mods[m.producer], mods[m.norm] if m.norm else None, m.positions) for m in s.members]
            for s in self.sites
        ]
        self._readers = [
            [Reader(mods[p], c.kind, c.block, c.head, index.get(p)) for p, c in readers_of(module, s)]
            for s in self.sites
        ]
        self._norms: list[list[Norm]] = [
            [r.norm for r in rows if r.norm is not None] + [mods[p] for p in s.norms]
            for rows, s in zip(self._members, self.sites)
        ]

    @torch.no_grad()
    def prepare(self) -> None:
        """Give the module what growth keeps on it, before its first change (idempotent): a zero
        bias for a producer without one (a site's unit is a row and a bias), a ``clgrow_cohort``
        buffer per producer and a ``clgrow_growth_steps`` buffer on the module, so cohorts follow
        it into checkpoints. Measuring needs none of it; growth, pruning and resets call it."""
        for rows in self._members:
            for r in rows:
                prod, n = r.producer, r.weight.shape[0]
                if prod.bias is None:
                    prod.bias = nn.Parameter(r.weight.new_zeros(n), requires_grad=r.weight.requires_grad)
                if "clgrow_cohort" not in prod._buffers:
                    prod.register_buffer("clgrow_cohort", torch.zeros(n, dtype=torch.long, device=r.weight.device))
        if "clgrow_growth_steps" not in self.module._buffers:
            self.module.register_buffer("clgrow_growth_steps", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------ shape
    @property
    def num_hidden_layers(self) -> int:
        """Number of sites."""
        return len(self.sites)

    @property
    def hidden_sizes(self) -> list[int]:
        """Units of every site, first to last."""
        return [int(rows[0].weight.shape[0]) for rows in self._members]

    @property
    def growth_steps(self) -> Tensor:
        """Growth steps taken so far (the last cohort): a buffer once :meth:`prepare` ran."""
        steps = self.module._buffers.get("clgrow_growth_steps")
        return torch.zeros((), dtype=torch.long) if steps is None else steps

    def check_layer(self, layer: int) -> None:
        """Refuse an index that names no site."""
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < len(self.sites):
            raise GrowthError(f"unknown growth site {layer!r}: this model has sites 0..{len(self.sites) - 1}")

    def members(self, layer: int) -> list[Rows]:
        """The producers of site ``layer``'s units (one, or a residual stream's several)."""
        self.check_layer(layer)
        return self._members[layer]

    def consumers(self, layer: int) -> list[Reader]:
        """Every layer that reads site ``layer``'s units."""
        self.check_layer(layer)
        return self._readers[layer]

    def norms(self, layer: int) -> list[Norm]:
        """Every batch norm on site ``layer``'s units."""
        self.check_layer(layer)
        return self._norms[layer]

    def pool(self, layer: int) -> nn.Module | None:
        """The pooling between a plain site's ReLU and its consumers (``None`` without one)."""
        self.check_layer(layer)
        pools = self.sites[layer].pools
        if pools is None:
            raise GrowthError(f"site {layer}: its consumers read it through different poolings")
        return None if not pools else pools[0] if len(pools) == 1 else nn.Sequential(*pools)

    def reads_out(self, layer: int) -> bool:
        """Whether site ``layer``'s consumers are the model's output layers (its head or heads)."""
        self.check_layer(layer)
        return self.sites[layer].reads_out

    def stream(self, layer: int) -> bool:
        """Whether site ``layer`` is a residual stream (producers tied by additions)."""
        self.check_layer(layer)
        return self.sites[layer].stream

    def cohort(self, layer: int) -> Tensor:
        """Growth step that added each unit of site ``layer`` (0 = initial units), shape ``(n,)``."""
        prod = self.members(layer)[0].producer
        cohort = prod._buffers.get("clgrow_cohort")
        if cohort is None:  # never grown: every unit is initial
            w = prod.weight
            return torch.zeros(w.shape[0], dtype=torch.long, device=w.device)
        return cohort

    def set_cohort(self, layer: int, cohort: Tensor) -> None:
        """Replace site ``layer``'s cohorts ``(n,)`` (on each of its producers)."""
        self.prepare()
        for r in self.members(layer):
            r.producer.register_buffer("clgrow_cohort", cohort.clone())

    def outgoing(self, layer: int, p: int = 1) -> Tensor:
        """Per unit ``(n,)``, the ``p``-norm over every reader of its outgoing slices (``p=1``: the
        sum of magnitudes, continual backprop's ``Σ|w_out|``), detached."""
        n = self.hidden_sizes[layer]
        total = sum(c.view(n).detach().abs().pow(p).sum((0, 2)) for c in self.consumers(layer))
        assert isinstance(total, Tensor)
        return total if p == 1 else total.pow(1 / p)

    @property
    def heads_per_task(self) -> bool:
        """Whether the module routes samples by task label (then it is called with them)."""
        return hasattr(self.module, "forward_single_task")

    @property
    def num_classes(self) -> int:
        """Outputs of the model's head (``0`` when it has none clgrow can see)."""
        head = self.output_layer()
        return 0 if head is None else int(surgery.weight_of(head).shape[0])

    # ---------------------------------------------------------------- forward
    def forward(self, x: Tensor, task_labels: Tensor | int | None = None) -> Any:
        return call_model(self.module, x, task_labels)

    def _last(self, r: Rows) -> nn.Module:
        return r.norm if r.norm is not None else r.producer

    def _capture(self, emit: Callable[[int, Tensor], None], detach: bool) -> list[RemovableHandle]:
        """Hooks that call ``emit(site, a)`` once per forward pass of the module with every
        site's activity ``a`` ``(batch, n)`` (see :class:`_Capture`)."""
        cap = _Capture(self, emit, detach)
        handles = [self.module.register_forward_pre_hook(cap.start)]
        for i, site in enumerate(self.sites):
            if not site.stream:
                handles.append(self._last(self._members[i][0]).register_forward_hook(partial(cap.plain, i)))
                continue
            handles.append(self._members[i][0].producer.register_forward_pre_hook(partial(cap.begin, i)))
            handles += [c.module.register_forward_pre_hook(partial(cap.read, i, c.block)) for c in self._readers[i]]
        handles.append(self.module.register_forward_hook(cap.finish))
        return handles

    def run(
        self,
        x: Tensor,
        task_labels: Tensor | int | None = None,
        *,
        weights: Mapping[Producer, tuple[Tensor, Tensor]] | None = None,
        gates: Mapping[int, Tensor] | None = None,
        capture: bool = False,
    ) -> tuple[Any, list[Tensor]]:
        """The module's own forward with substitutions.

        Parameters
        ----------
        weights : mapping producer -> (rows ``(n, m)``, bias ``(n,)``), optional
            Used instead of the producer's own parameters (SWE's coupled weights).
        gates : mapping site -> Tensor ``(n,)``, optional
            Multiply the site's (normalised) pre-activations unit-wise, at every position and in
            every producer of a stream (SVoD's ``1 + y``).
        capture : bool
            Also return every site's activity ``(batch, n)`` (see :meth:`observe_activations`).
        """
        captured: dict[int, Tensor] = {}
        handles: list[RemovableHandle] = []
        for i, gate in (gates or {}).items():
            for r in self.members(i):

                def gated(mod: nn.Module, args: Any, z: Tensor, g: Tensor = gate) -> Tensor:
                    return z * g.view(-1, *([1] * (z.dim() - 2)))

                handles.append(self._last(r).register_forward_hook(gated))
        if capture:
            handles += self._capture(lambda i, a: captured.__setitem__(i, a), detach=False)
        try:
            if weights:
                subs: dict[str, Tensor] = {}
                for prod, (w, b) in weights.items():
                    path = self._paths[prod]
                    subs[f"{path}.weight"] = w.view_as(prod.weight)
                    subs[f"{path}.bias"] = b
                out = torch.func.functional_call(self.module, subs, call_args(self.module, x, task_labels))
            else:
                out = call_model(self.module, x, task_labels)
        finally:
            for h in handles:
                h.remove()
        hs = [captured.get(i, x.new_zeros(0)) for i in range(len(self.sites))]
        return out, hs

    def observe_activations(self, fn: Callable[[int, Tensor], None]) -> RemovableHandle:
        """Call ``fn(site, a)`` with every site's activity ``a`` ``(batch, n)`` once per forward
        pass of the module (however it is called), until the handle's ``remove()``: a plain site's
        post-ReLU units (a channel's mean ``|h|`` over positions), a residual stream's mean over
        its readers of what they read."""
        return _Handles(self._capture(fn, detach=True))

    def macs_per_sample(self, x: Tensor | None = None) -> tuple[int, int]:
        """Multiply-adds of one sample's forward pass and of the first layer it runs
        (:func:`clgrow.measure.compute.measure` on ``x[:1]``, cached per widths and input shape;
        without ``x``, the first site's first producer twice)."""
        r = self._members[0][0]
        if x is None:
            first = r.positions * int(r.weight.shape[0]) * r.fan_in
            return first, first
        key = (tuple(x.shape[1:]), tuple(self.hidden_sizes))
        cache = self.module.__dict__.setdefault("_clgrow_macs", {})
        if key not in cache:
            from clgrow.measure.compute import measure

            cache[key] = measure(self.module, *call_args(self.module, x[:1], 0 if self.heads_per_task else None))
        return cache[key]

    # ----------------------------------------------------------------- growth
    @torch.no_grad()
    def add_units(
        self,
        layer: int,
        weight: Tensor | Sequence[Tensor],
        bias: Tensor | Sequence[Tensor],
        out_weight: Tensor | Sequence[Tensor | None] | None = None,
        cohort: int | None = None,
    ) -> Tensor:
        """Append ``k`` units to site ``layer``.

        Parameters
        ----------
        weight : Tensor ``(k, m)``, or one per producer of a residual stream
            New rows (filters flattened or whole).
        bias : Tensor ``(k,)``, or one per producer
        out_weight : Tensor ``(p, k, r)``, or one per consumer (``None``: zeros), optional
            The readers' new slices as unit views; zeros leave the function unchanged exactly.
        cohort : int, optional
            Cohort recorded for the new units (default: the next growth step).

        Returns
        -------
        Tensor ``(k,)``
            Indices of the new units. A new batch-norm channel starts as weight 1, bias 0, mean 0,
            variance 1.
        """
        rows = self.members(layer)
        ws = [weight] if isinstance(weight, Tensor) else list(weight)
        bs = [bias] if isinstance(bias, Tensor) else list(bias)
        if len(ws) != len(rows) or len(bs) != len(rows):
            raise GrowthError(f"site {layer} has {len(rows)} producer(s): give one weight and bias for each")
        n = self.hidden_sizes[layer]
        k = ws[0].shape[0] if ws[0].dim() >= 2 else -1
        for r, w, b in zip(rows, ws, bs):
            if k < 0 or w.dim() < 2 or w.shape[0] != k or math.prod(w.shape[1:]) != r.fan_in:
                raise GrowthError(f"new rows for site {layer} must have shape (k, {r.fan_in}), got {tuple(w.shape)}")
            if b.shape != (k,):
                raise GrowthError(f"new biases for site {layer} must have shape ({k},), got {tuple(b.shape)}")
        readers = self.consumers(layer)
        outs = [out_weight] * len(readers) if out_weight is None or isinstance(out_weight, Tensor) else list(out_weight)
        if len(outs) != len(readers):
            raise GrowthError(f"site {layer} has {len(readers)} consumers, got {len(outs)} outgoing weights")
        for c, out in zip(readers, outs):
            if c.weight.shape[1] != n * (1 if c.kind == "conv" else c.block):
                raise GrowthError(f"a {c.kind} consumer reads {c.weight.shape[1]} inputs, not {n} units x {c.block}")
            per = c.view(n).shape[2]
            if out is not None and out.numel() != c.weight.shape[0] * k * per:
                raise GrowthError(
                    f"new outgoing weights of a {c.kind} consumer must have shape ({c.weight.shape[0]}, {k}, {per}), "
                    f"got {tuple(out.shape)}"
                )
        idx = torch.arange(n, n + k, device=rows[0].weight.device)
        if k == 0:
            return idx
        self.prepare()
        for r, w, b in zip(rows, ws, bs):
            surgery.append_out(r.producer, k, {"weight": w, "bias": b})
        for norm in self.norms(layer):
            surgery.append_out(norm, k)
        for c, out in zip(readers, outs):
            before = c.weight.shape[1]
            surgery.append_in(c.module, n, k, out)
            self._widen_owners(self._paths[c.module], before, c.weight.shape[1])
        step = int(self.growth_steps) + 1 if cohort is None else int(cohort)
        old = self.cohort(layer)
        self.set_cohort(layer, torch.cat([old, old.new_full((k,), step)]))
        return idx

    @torch.no_grad()
    def keep_units(self, layer: int, keep: Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Keep only units ``keep`` (sorted indices) of site ``layer``: rows of every producer and
        norm, the readers' slices and the cohorts; an optimizer's entries are sliced alike."""
        self.prepare()
        n = self.hidden_sizes[layer]
        keep = keep.to(self.members(layer)[0].weight.device)
        for r in self.members(layer):
            surgery.keep_out(r.producer, keep, optimizer)
        for norm in self.norms(layer):
            surgery.keep_out(norm, keep, optimizer)
        for c in self.consumers(layer):
            before = c.weight.shape[1]
            surgery.keep_in(c.module, n, keep, optimizer)
            self._widen_owners(self._paths[c.module], before, c.weight.shape[1])
        cohort = self.cohort(layer)
        self.set_cohort(layer, cohort.index_select(0, keep.to(cohort.device)))

    def _widen_owners(self, path: str, before: int, after: int) -> None:
        """Containers that build new heads from an ``in_features`` of their own (Avalanche's
        multi-head classifiers) learn the new width."""
        parts = path.split(".")
        for cut in range(len(parts) - 1, -1, -1):
            owner = self.module.get_submodule(".".join(parts[:cut])) if cut else self.module
            if surgery.kind_of(owner) is None and getattr(owner, "in_features", None) == before:
                setattr(owner, "in_features", after)  # noqa: B010  (any module's attribute)

    def output_layer(self) -> nn.Module | None:
        """The one output layer every site's output reaches (``None`` with several or none)."""
        heads = {id(c.module): c.module for readers in self._readers for c in readers if c.head}
        if len(heads) == 1:
            return next(iter(heads.values()))
        outs = [r for r in self.site_map.refused if r.reason.startswith("an output layer")]
        return self.module.get_submodule(outs[0].module) if len(outs) == 1 else None

    @torch.no_grad()
    def add_classes(self, n: int) -> None:
        """Grow the model's one output layer by ``n`` outputs (old rows kept, new rows initialised
        as the layer initialises its own)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise GrowthError(f"add_classes needs an integer n >= 0, got {n!r}")
        head = self.output_layer()
        if head is None or self.heads_per_task:
            raise GrowthError(
                f"{type(self.module).__name__}: clgrow grows the classes of a model with one output layer; "
                "give a multi-head model its heads as Avalanche does (its MultiHeadClassifier)"
            )
        if n == 0:
            return
        w, b = surgery.default_init(n, math.prod(surgery.weight_of(head).shape[1:]))
        values = {"weight": w, "bias": b}
        surgery.append_out(head, n, values)

    def snapshot(self) -> ModelSnapshot:
        """Record the module so that :meth:`restore` can undo any growth, bit for bit."""
        return snapshot_module(self.module)

    def restore(self, snap: ModelSnapshot) -> None:
        """Put back the parameter objects, values, buffers and shapes of ``snap``."""
        restore_module(snap)


def as_growable(
    model: nn.Module, example: Tensor | None = None, task_labels: Tensor | int | None = None
) -> GrowableModule:
    """``model`` seen through :class:`Growable`: itself when it already is, else a
    :class:`GrowableModule` over it.

    Its sites are found by tracing ``example`` (a batch of inputs) and remembered on the module (a
    plain attribute, so copies and pickles keep it); without ``example`` the last trace serves
    (clgrow's builders trace the models they build). Raises :class:`GrowthError` naming every
    layer and why none can grow when the model has no site.
    """
    if isinstance(model, GrowableModule):
        return model
    if not isinstance(model, nn.Module):
        raise GrowthError(f"clgrow grows an nn.Module, got {type(model).__name__}")
    if example is not None:
        model.__dict__[_SITE_MAP] = find_sites(model, example, task_labels)
    found = model.__dict__.get(_SITE_MAP)
    if found is None:
        raise GrowthError(f"finding the growth sites of a {type(model).__name__} needs an example batch")
    return GrowableModule(model, found)


def growable_from_loader(model: nn.Module, loader: Iterable[Any] | None) -> GrowableModule:
    """``model`` as clgrow grows it: a :class:`GrowableModule` over it (itself when it
    is one already), from its last trace while that still matches the module, else traced on
    ``loader``'s first batch (``None``: the last trace, or a clear error without one)."""
    if isinstance(model, GrowableModule):
        return model
    found = known_sites(model) if isinstance(model, nn.Module) else None
    if (found is not None and still_valid(model, found)) or loader is None:
        return as_growable(model)
    if not isinstance(model, nn.Module):
        raise GrowthError(f"clgrow grows an nn.Module, got {type(model).__name__}")
    check_loader(loader)  # a one-shot iterator would lose the batch the trace reads
    device = next((p.device for p in model.parameters()), None)
    x, _, t = unpack(next(iter(loader)), device)
    return as_growable(model, x, t)


def known_sites(model: nn.Module) -> SiteMap | None:
    """The sites of ``model`` from its last trace (``None`` before one)."""
    found = model.__dict__.get(_SITE_MAP)
    return found if isinstance(found, SiteMap) else None


#: The attribute under which a traced module keeps its site map.
_SITE_MAP = "_clgrow_site_map"
