"""Growth of any ``nn.Module`` through its own forward pass, at the sites :mod:`clgrow.trace` finds.

:class:`GrowableModule` presents a module's sites through the interface every extender,
distributor, pruning method and metric uses (that of :class:`~clgrow.GrowableMLP`): it grows the
module in place and runs it with substitutions (SWE's coupled weights through
``torch.func.functional_call``; SVoD's gates and activity capture through forward hooks on each
site's producer or norm, whose ReLU output is then ``relu`` of what the hook sees).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from clgrow.channels import ChannelConsumer, _param, channel_activity, check_out_weights, widen_consumers, widen_norm
from clgrow.errors import GrowthError
from clgrow.model import GrowableMLP, ModelSnapshot, outgoing_norm, restore_module, snapshot_module
from clgrow.trace import SiteMap, call_args, call_model, find_sites

__all__ = ["GrowableModule", "as_growable", "known_sites"]

Producer = nn.Linear | nn.Conv2d
Norm = nn.modules.batchnorm._BatchNorm


class GrowableModule(nn.Module):
    """Any ``nn.Module`` with growth sites, seen through the interface every extender,
    distributor, pruning method and metric uses (that of :class:`~clgrow.GrowableMLP`).

    The wrapped module is the one that grows: its layers get new rows and columns in place, its
    own ``forward`` (dropout, pooling, residual adds, task routing) runs unchanged. Each site's
    producer carries a ``clgrow_cohort`` buffer (the growth step that added each unit) and the
    module a ``clgrow_growth_steps`` buffer, so they follow the module into checkpoints; a
    producer without a bias is given a zero one (see :meth:`prepare`). Wrapping changes nothing.

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

    @torch.no_grad()
    def prepare(self) -> None:
        """Give the module what growth keeps on it, before its first change (idempotent): a zero
        bias for a producer without one (a site's unit is a row and a bias), a ``clgrow_cohort``
        buffer per producer and a ``clgrow_growth_steps`` buffer on the module, so cohorts follow
        it into checkpoints. Measuring needs none of it; growth, pruning and resets call it."""
        for i in range(len(self.sites)):
            prod = self._producer(i)
            n = prod.weight.shape[0]
            if prod.bias is None:
                prod.bias = nn.Parameter(prod.weight.new_zeros(n), requires_grad=prod.weight.requires_grad)
            if "clgrow_cohort" not in prod._buffers:
                prod.register_buffer("clgrow_cohort", torch.zeros(n, dtype=torch.long, device=prod.weight.device))
        if "clgrow_growth_steps" not in self.module._buffers:
            self.module.register_buffer("clgrow_growth_steps", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------ shape
    @property
    def hidden(self) -> list[nn.Linear]:
        """Every site's producer, first to last (a ``Conv2d`` where the site is convolutional)."""
        return [self.module.get_submodule(s.producer) for s in self.sites]  # type: ignore[misc]

    @property
    def growth_steps(self) -> Tensor:
        """Growth steps taken so far (the last cohort): a buffer once :meth:`prepare` ran."""
        steps = self.module._buffers.get("clgrow_growth_steps")
        return torch.zeros((), dtype=torch.long) if steps is None else steps

    @property
    def hidden_sizes(self) -> list[int]:
        return [self._producer(i).weight.shape[0] for i in range(len(self.sites))]

    @property
    def num_hidden_layers(self) -> int:
        return len(self.sites)

    def _check_layer(self, layer: int) -> None:
        if not isinstance(layer, int) or not 0 <= layer < len(self.sites):
            raise GrowthError(f"unknown growth site {layer!r}: this model has sites 0..{len(self.sites) - 1}")

    def _producer(self, layer: int) -> Producer:
        self._check_layer(layer)
        return cast(Producer, self.module.get_submodule(self.sites[layer].producer))

    def fan_in(self, layer: int) -> int:
        return math.prod(self._producer(layer).weight.shape[1:])

    def rows(self, layer: int) -> Tensor:
        w = self._producer(layer).weight
        return w.view(w.shape[0], -1)

    def norm(self, layer: int) -> Norm | None:
        """The batch norm between site ``layer``'s producer and its ReLU (``None`` without one)."""
        self._check_layer(layer)
        path = self.sites[layer].norm
        return None if path is None else cast(Norm, self.module.get_submodule(path))

    def pool(self, layer: int) -> nn.Module | None:
        """The pooling between site ``layer``'s ReLU and its consumers (``None`` without one)."""
        self._check_layer(layer)
        pools = self.sites[layer].pools
        if pools is None:
            raise GrowthError(f"site {layer}: its consumers read it through different poolings")
        return None if not pools else pools[0] if len(pools) == 1 else nn.Sequential(*pools)

    def channel_consumers(self, layer: int) -> list[ChannelConsumer]:
        if not isinstance(self._producer(layer), nn.Conv2d):
            raise GrowthError(f"site {layer} ({self.sites[layer].producer}) has units, not channels")
        return self._readers(layer)

    def _readers(self, layer: int) -> list[ChannelConsumer]:
        """Site ``layer``'s consumers as modules, each with how it reads the units."""
        return [
            ChannelConsumer(self.module.get_submodule(c.path), c.kind, c.block)  # type: ignore[arg-type]
            for c in self.sites[layer].consumers
        ]

    def consumers(self, layer: int) -> list[nn.Linear]:
        self._check_layer(layer)
        return [self.module.get_submodule(c.path) for c in self.sites[layer].consumers]  # type: ignore[misc]

    def next_site(self, layer: int) -> int | None:
        self._check_layer(layer)
        cons = self.sites[layer].consumers
        producers = {s.producer: i for i, s in enumerate(self.sites)}
        if len(cons) == 1 and cons[0].path in producers and cons[0].kind != "flatten":
            return producers[cons[0].path]
        return None

    def reads_out(self, layer: int) -> bool:
        """Whether site ``layer``'s consumers are the model's output layers (its head or heads)."""
        self._check_layer(layer)
        return self.sites[layer].reads_out

    def cohort(self, layer: int) -> Tensor:
        """Growth step that added each unit of site ``layer`` (0 = initial units), shape ``(n,)``."""
        prod = self._producer(layer)
        cohort = prod._buffers.get("clgrow_cohort")
        if cohort is None:  # never grown: every unit is initial
            return torch.zeros(prod.weight.shape[0], dtype=torch.long, device=prod.weight.device)
        return cohort

    def set_cohort(self, layer: int, cohort: Tensor) -> None:
        """Replace site ``layer``'s cohorts ``(n,)`` (after units left it)."""
        self.prepare()
        self._producer(layer).register_buffer("clgrow_cohort", cohort)

    def outgoing(self, layer: int, p: int = 1) -> Tensor:
        return outgoing_norm(self.consumers(layer), self.hidden_sizes[layer], p)

    @property
    def heads_per_task(self) -> bool:
        """Whether the module routes samples by task label (then it is called with them)."""
        return hasattr(self.module, "forward_single_task")

    @property
    def num_classes(self) -> int:
        return int(getattr(self.module, "num_classes", 0) or 0)

    # ---------------------------------------------------------------- forward
    def forward(self, x: Tensor, task_labels: Tensor | int | None = None) -> Tensor:
        return call_model(self.module, x, task_labels)

    def _last(self, layer: int) -> nn.Module:
        s = self.sites[layer]
        return self.module.get_submodule(s.norm if s.norm is not None else s.producer)

    def run(
        self,
        x: Tensor,
        task_labels: Tensor | int | None = None,
        *,
        weights: Mapping[int, tuple[Tensor, Tensor]] | None = None,
        gates: Mapping[int, Tensor] | None = None,
        capture: bool = False,
    ) -> tuple[Tensor, list[Tensor]]:
        """The module's own forward with substitutions (see :meth:`GrowableMLP.run`): ``weights``
        replace producers' rows ``(n, m)`` and biases ``(n,)``; ``gates`` ``(n,)`` multiply a
        site's (normalised) pre-activations; ``capture`` returns every site's post-ReLU activity
        ``(batch, n)`` (a channel's mean ``|h|`` over positions)."""
        captured: dict[int, list[Tensor]] = {i: [] for i in range(len(self.sites))}
        handles = []
        for i in range(len(self.sites)):
            gate = None if gates is None else gates.get(i)
            if gate is None and not capture:
                continue

            def hook(mod: nn.Module, args: Any, z: Tensor, i: int = i, gate: Tensor | None = gate) -> Tensor:
                if gate is not None:
                    z = z * (gate.view(-1, 1, 1) if z.dim() == 4 else gate)
                if capture:
                    captured[i].append(channel_activity(torch.relu(z)))
                return z

            handles.append(self._last(i).register_forward_hook(hook))
        try:
            if weights:
                subs: dict[str, Tensor] = {}
                for i, (w, b) in weights.items():
                    prod = self._producer(i)
                    subs[f"{self.sites[i].producer}.weight"] = w.view(w.shape[0], *prod.weight.shape[1:])
                    subs[f"{self.sites[i].producer}.bias"] = b
                out = torch.func.functional_call(self.module, subs, call_args(self.module, x, task_labels))
            else:
                out = call_model(self.module, x, task_labels)
        finally:
            for h in handles:
                h.remove()
        hs = [torch.cat(captured[i]) if captured[i] else x.new_zeros(0) for i in range(len(self.sites))]
        return out, hs

    def observe_activations(self, fn: Callable[[int, Tensor], None]) -> RemovableHandle:
        """Call ``fn(site, a)`` with every site's post-ReLU activity ``a`` ``(batch, n)`` in every
        forward pass of the module (however it is called), until the handle's ``remove()``."""
        hooks = []
        for i in range(len(self.sites)):

            def hook(mod: nn.Module, args: Any, z: Tensor, i: int = i) -> None:
                fn(i, channel_activity(torch.relu(z.detach())))

            hooks.append(self._last(i).register_forward_hook(hook))
        return _Handles(hooks)

    def macs_per_sample(self, x: Tensor | None = None) -> tuple[int, int]:
        """Multiply-adds of one sample's forward pass (PyTorch's FLOP counter on one sample, cached
        per widths and input shape) and of the first site's producer alone."""
        first = self.sites[0].positions * self.hidden_sizes[0] * self.fan_in(0)
        if x is None:
            return first, first
        key = (tuple(x.shape[1:]), tuple(self.hidden_sizes))
        cache = self.module.__dict__.setdefault("_clgrow_macs", {})
        if key not in cache:
            from torch.utils.flop_counter import FlopCounterMode

            from clgrow import compute

            with torch.no_grad(), FlopCounterMode(display=False) as flops, compute.paused():
                call_model(self.module, x[:1], None if not hasattr(self.module, "forward_single_task") else 0)
            cache[key] = flops.get_total_flops() // 2
        return cache[key], first

    # ----------------------------------------------------------------- growth
    @torch.no_grad()
    def add_units(
        self,
        layer: int,
        weight: Tensor,
        bias: Tensor,
        out_weight: Tensor | Sequence[Tensor | None] | None = None,
        cohort: int | None = None,
    ) -> Tensor:
        """Append ``k`` units to site ``layer``: rows ``(k, m)`` (filters flattened or whole),
        biases ``(k,)``, and per consumer a unit view ``(p, k, r)`` (or ``(p, k)``) of its new
        slices, ``None`` for zeros (function preserving). A new batch-norm unit starts as weight 1,
        bias 0, mean 0, variance 1."""
        self.prepare()
        prod = self._producer(layer)
        m = self.fan_in(layer)
        n = prod.weight.shape[0]
        k = weight.shape[0] if weight.dim() >= 2 else -1
        if k < 0 or math.prod(weight.shape[1:]) != m:
            raise GrowthError(f"new rows for site {layer} must have shape (k, {m}), got {tuple(weight.shape)}")
        if bias.shape != (k,):
            raise GrowthError(f"new biases for site {layer} must have shape ({k},), got {tuple(bias.shape)}")
        specs = self.sites[layer].consumers
        consumers = self._readers(layer)
        outs = [out_weight] * len(specs) if out_weight is None or isinstance(out_weight, Tensor) else list(out_weight)
        check_out_weights(consumers, n, k, outs)
        idx = torch.arange(n, n + k, device=prod.weight.device)
        if k == 0:
            return idx
        ref = prod.weight
        prod.weight = _param(ref, torch.cat([ref, weight.reshape(k, *ref.shape[1:]).to(ref)]))
        assert prod.bias is not None  # every site's producer has one (given by prepare)
        prod.bias = _param(prod.bias, torch.cat([prod.bias, bias.to(ref)]))
        if isinstance(prod, nn.Conv2d):
            prod.out_channels = n + k
        else:
            prod.out_features = n + k
        norm = self.norm(layer)
        if norm is not None:
            widen_norm(norm, k)
        widths = [c.module.weight.shape[1] for c in consumers]
        widen_consumers(consumers, n, k, outs)
        for spec, c, before in zip(specs, consumers, widths):
            self._widen_owners(spec.path, before, c.module.weight.shape[1])
        step = int(self.growth_steps) + 1 if cohort is None else int(cohort)
        old = self.cohort(layer)
        prod.register_buffer("clgrow_cohort", torch.cat([old, old.new_full((k,), step)]))
        return idx

    def _widen_owners(self, path: str, before: int, after: int) -> None:
        """Containers that build new heads from an ``in_features`` of their own (Avalanche's
        multi-head classifiers) learn the new width."""
        parts = path.split(".")
        for cut in range(len(parts) - 1, -1, -1):
            owner = self.module.get_submodule(".".join(parts[:cut])) if cut else self.module
            if not isinstance(owner, (nn.Linear, nn.Conv2d)) and getattr(owner, "in_features", None) == before:
                setattr(owner, "in_features", after)  # noqa: B010  (any module's attribute)

    def add_classes(self, n: int) -> None:
        raise GrowthError(
            f"{type(self.module).__name__}: clgrow grows the hidden units of a model it did not build; "
            "its classes grow with the model's own head (Avalanche's IncrementalClassifier)"
        )

    def snapshot(self) -> ModelSnapshot:
        return snapshot_module(self.module)

    def restore(self, snap: ModelSnapshot) -> None:
        restore_module(snap)


class _Handles(RemovableHandle):
    """One handle for several hooks."""

    def __init__(self, handles: list[RemovableHandle]) -> None:
        super().__init__(OrderedDict())
        self.handles = handles

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        super().remove()


def as_growable(model: nn.Module, example: Tensor | None = None, task_labels: Tensor | int | None = None) -> Any:
    """``model`` itself when clgrow built it, else a :class:`GrowableModule` over it.

    Its sites are found by tracing ``example`` (a batch of inputs) and remembered on the module (a
    plain attribute, so copies and pickles keep it); without ``example`` the last trace serves.
    Raises :class:`GrowthError` naming every layer and why none can grow when the model has no site.
    """
    if isinstance(model, (GrowableMLP, GrowableModule)):
        return model
    if not isinstance(model, nn.Module):
        raise GrowthError(f"clgrow grows an nn.Module, got {type(model).__name__}")
    if example is not None:
        model.__dict__[_SITE_MAP] = find_sites(model, example, task_labels)
    found = model.__dict__.get(_SITE_MAP)
    if found is None:
        raise GrowthError(f"finding the growth sites of a {type(model).__name__} needs an example batch")
    return GrowableModule(model, found)


def known_sites(model: nn.Module) -> SiteMap | None:
    """The sites of ``model`` from its last trace (``None`` before one)."""
    found = model.__dict__.get(_SITE_MAP)
    return found if isinstance(found, SiteMap) else None


#: The attribute under which a traced module keeps its site map.
_SITE_MAP = "_clgrow_site_map"
