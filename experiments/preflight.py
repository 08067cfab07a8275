"""What the run checks on the model it built and the data it will feed, before anything trains.

``clgrow run`` and ``clgrow run --check`` call :func:`preflight` alike, after building the
benchmark and the model exactly as the run does: the model is called on the first training batch
of the first experience (its shape, dtype, device and task labels, as the strategy will feed it),
its output is checked against the stream's classes and the loss, its growth sites are traced on
that batch, and every growth setting and budget is checked against the sites found, for a model
clgrow did not build as for its own (whose widths the configuration already priced). A refusal is
a ``ConfigError`` naming the setting or the model, raised before anything changes.
"""

from __future__ import annotations

import copy
import itertools
import math
from typing import Any

import torch
from torch import Tensor, nn

from clgrow.discovery import SiteMap, call_args, find_sites
from clgrow.errors import ConfigError
from clgrow.experiments.benchmarks import BenchmarkInfo
from clgrow.experiments.catalog import physical_memory
from clgrow.experiments.config import RunPlan
from clgrow.experiments.models import is_external

__all__ = ["first_batch", "preflight", "describe_batch"]


def first_batch(plan: RunPlan, bm: BenchmarkInfo, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """``(x, y, t)``: the first training batch of the first experience, as the run feeds it."""
    ds = bm.scenario.train_stream[0].dataset
    n = min(len(ds), plan.config.train_mb_size)
    if n == 0:
        raise ConfigError(f"benchmark: {bm.name}'s first experience has no training samples")
    samples = [ds[i] for i in range(n)]
    x = torch.stack([s[0] for s in samples]).to(device)
    y = torch.tensor([int(s[1]) for s in samples], device=device)
    t = torch.tensor([int(s[2]) if len(s) > 2 else 0 for s in samples], device=device)
    return x, y, t


def describe_batch(x: Tensor) -> str:
    return f"a batch of shape {list(x.shape)}, {str(x.dtype).removeprefix('torch.')}, on {x.device.type}"


def _multi_task(model: nn.Module) -> bool:
    return hasattr(model, "forward_single_task")


def _dynamic_head(model: nn.Module) -> bool:
    """Whether the model adds classes or heads itself as the stream goes (Avalanche's classifiers)."""
    from avalanche.models import IncrementalClassifier, MultiHeadClassifier

    return any(isinstance(m, (IncrementalClassifier, MultiHeadClassifier)) for m in model.modules())


def preflight(plan: RunPlan, bm: BenchmarkInfo, model: nn.Module, device: torch.device) -> SiteMap | None:
    """Call ``model`` on the run's first batch, check its output and loss, trace its growth sites
    and check the growth settings against them; returns the sites (``None`` for a model the run
    never grows, prunes or resets). Leaves the model as it was (eval mode, no gradient; a model
    that Avalanche adapts to each experience is checked on an adapted copy)."""
    from avalanche.models import DynamicModule
    from avalanche.models.dynamic_modules import avalanche_model_adaptation

    cfg = plan.config
    name = cfg.model
    x, y, t = first_batch(plan, bm, device)
    fed = describe_batch(x) + (" with task labels" if _multi_task(model) else "")
    if any(isinstance(m, DynamicModule) for m in model.modules()):
        # heads and columns the strategy adds before the first experience trains: on a copy
        model = copy.deepcopy(model)
        model.train()
        try:
            avalanche_model_adaptation(model, bm.scenario.train_stream[0])
        except Exception as err:
            raise ConfigError(
                f"model: {name} cannot adapt to the first experience: {type(err).__name__}: {err}"
            ) from None
    was = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            try:
                out = model(*call_args(model, x, t))
            except Exception as err:  # any failure of the user's forward is theirs to fix: name it
                raise ConfigError(
                    f"model: {name} does not run on what the run feeds it ({fed}): "
                    f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
                ) from None
            _check_output(name, out, x, y, bm, model)
            changes = cfg.grows or cfg.prune != "none" or cfg.plasticity != "none" or cfg.match_split
            if not changes:
                return None
            try:
                found = find_sites(model, x[:2], t[:2] if _multi_task(model) else None)
            except Exception as err:  # the trace runs the user's forward: whatever it raises is named
                raise ConfigError(
                    f"model: {name}: its growth sites cannot be traced on {fed}: {type(err).__name__}: {err}"
                ) from None
    finally:
        for m, mode in was.items():
            m.training = mode
    if not found.sites:
        raise ConfigError(f"model: {name} has no growth site.\n{found.describe()}")
    if cfg.grows and is_external(name):
        _check_growth(plan, model, found, x[:2], t[:2])
    return found


def _check_output(name: str, out: Any, x: Tensor, y: Tensor, bm: BenchmarkInfo, model: nn.Module) -> None:
    if not isinstance(out, Tensor):
        raise ConfigError(
            f"model: {name} returns a {type(out).__name__}; the strategies need one tensor of class scores "
            "(batch, classes)"
        )
    if out.dim() != 2 or out.shape[0] != x.shape[0] or not out.is_floating_point():
        raise ConfigError(
            f"model: {name} returns {str(out.dtype).removeprefix('torch.')} scores of shape {list(out.shape)} for "
            f"{x.shape[0]} samples; the strategies need floating-point class scores of shape (batch, classes)"
        )
    need = bm.head_size
    if out.shape[1] < need and not _dynamic_head(model):
        what = "each task's" if bm.task_labels else "the stream's"
        raise ConfigError(
            f"model: {name} gives {out.shape[1]} class scores, but {what} labels go up to {need - 1} "
            f"({bm.name}: {need} classes{' per task' if bm.task_labels else ''}); build its head with {need} outputs"
        )
    try:
        loss = nn.functional.cross_entropy(out, y)
    except Exception as err:
        raise ConfigError(f"model: {name}'s scores do not give a loss on the stream's labels: {err}") from None
    if not bool(torch.isfinite(loss)):
        raise ConfigError(f"model: {name} gives a non-finite loss on the first batch ({float(loss)})")


def _meta_copy(model: nn.Module) -> nn.Module:
    """``model`` with every parameter and buffer on the ``meta`` device (shapes, no memory)."""
    memo: dict[int, Any] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    return copy.deepcopy(model, memo)


def _widened(model: nn.Module, x: Tensor, t: Tensor, extra: dict[int, int]) -> Any:
    """A meta copy of ``model`` with ``extra[site]`` units added (zeros): what growth makes of it."""
    from clgrow.sites import as_growable

    meta = _meta_copy(model)
    grown = as_growable(meta, x.to("meta"), t.to("meta") if _multi_task(model) else None)
    for i, g in extra.items():
        if g > 0:
            rows = grown.members(i)
            grown.add_units(
                i,
                [torch.zeros(g, *r.weight.shape[1:], device="meta") for r in rows],
                [torch.zeros(g, device="meta") for _ in rows],
            )
    return grown


def _check_growth(plan: RunPlan, model: nn.Module, found: SiteMap, x: Tensor, t: Tensor) -> None:
    """The growth settings against a traced model's sites: layers that exist, a cap above the
    widths, the parameter budget, memory at the end of the run, SVoD's candidate copy and SWE's
    dense coupling at the run's worst step (priced on meta copies widened as growth would)."""
    from clgrow.methods.svod import SVoD
    from clgrow.methods.swe import SWE
    from clgrow.sites import as_growable
    from clgrow.strategies.schedule import over_budget

    cfg, g = plan.config, plan.growth
    assert g is not None
    sizes = as_growable(model, x, t if _multi_task(model) else None).hidden_sizes
    n = len(sizes)
    where = f"model {cfg.model!r} has {n} growth site(s) (widths {sizes})"
    if g.layers is not None and any(i >= n for i in g.layers):
        raise ConfigError(f"grow.layers: layers {[i for i in g.layers if i >= n]} do not exist: {where}")
    layer = getattr(g.distributor, "layer", None)
    if isinstance(layer, int) and not isinstance(layer, bool) and not -n <= layer < n:
        raise ConfigError(f"grow.distributor_kwargs.layer: layer {layer} does not exist: {where}")
    layers = [i for i in (g.layers if g.layers is not None else range(n))]
    cap = g.max_hidden_size
    if cap is not None and cap <= min(sizes[i] for i in layers):
        raise ConfigError(f"grow: max_hidden_size {cap} leaves no room above the widths {sizes}: nothing would grow")
    why = over_budget(model, g.max_params)
    if why is not None:
        raise ConfigError(f"grow.max_params: {why}")
    k, steps = g.most_units, cfg.growth_steps()
    if not isinstance(k, int) or k < 1 or steps < 1:
        return
    grown = k * (steps - 1)  # units the earlier steps added
    room = {i: (math.inf if cap is None else max(0, cap - sizes[i])) for i in layers}

    def trial(extra: dict[int, float]) -> dict[int, int]:
        return {i: int(min(room[i], v)) for i, v in extra.items()}

    # where the earlier units make a step dearest: all in one layer, split between neighbours, or spread
    trials = [trial({i: grown}) for i in layers] + [trial({i: grown / len(layers) for i in layers})]
    trials += [trial({a: grown / 2, b: grown / 2}) for a, b in itertools.pairwise(layers)]
    final = trial({i: (grown + k) / len(layers) for i in layers})  # the fewest parameters the run ends with
    try:
        copies = [(extra, _widened(model, x, t, extra)) for extra in trials]
        params = sum(p.numel() for p in _widened(model, x, t, final).parameters())
    except Exception:  # a model that computes on values cannot run on meta: priced as it is now
        copies = [({}, as_growable(model, x, t if _multi_task(model) else None))]
        params = sum(p.numel() for p in model.parameters())
    total = physical_memory()
    if total is not None:
        if 16 * params > 0.9 * total:  # value, gradient, two moments (float32)
            raise ConfigError(
                f"grow.neurons_per_experience: {k} units at each of {steps} growth step(s) make {cfg.model!r} hold at "
                f"least {16 * params / 2**30:,.1f} GiB (parameters, gradients, optimizer moments) and this machine "
                f"has {total / 2**30:.1f} GiB; grow fewer units, cap them with max_hidden_size, or set max_params"
            )
    if isinstance(g.distributor, SVoD) and g.distributor.on_oversize == "error":
        svod = g.distributor
        need = max(
            ((SVoD.copy_bytes(c, svod.params.per_layer(c.hidden_sizes, k, layers), layers), e) for e, c in copies),
            key=lambda v: v[0],
        )
        if need[0] > svod.max_copy_bytes:
            raise ConfigError(
                f"grow.distributor_kwargs.max_copy_bytes: SVoD's candidate copy for K={k} units can need up to "
                f"{need[0]:,} bytes at the last of {steps} growth step(s) (units added so far {need[1]}), over "
                f"max_copy_bytes={svod.max_copy_bytes}; grow fewer units per step, use --svod-candidates 1 or "
                "--svod-on-oversize reduce, or raise --svod-max-copy-bytes"
            )
    ext = g.extender
    if isinstance(ext, SWE) and ext.coupling == "dense" and ext.on_oversize == "error":
        worst = max(
            (
                (
                    SWE.coupling_bytes(
                        k, min(c.hidden_sizes[i], ext.partners or c.hidden_sizes[i]), c.members(i)[0].fan_in
                    ),
                    i,
                )
                for _, c in copies
                for i in layers
            ),
            key=lambda v: v[0],
        )
        if worst[0] > ext.max_coupling_bytes:
            raise ConfigError(
                f"grow.extender_kwargs.max_coupling_bytes: a dense SWE coupling for K={k} units can need up to "
                f"{worst[0] / 2**20:.2f} MiB at the last of {steps} growth step(s) (site {worst[1]}), over "
                f"max_coupling_bytes={ext.max_coupling_bytes}; use the factored coupling, on_oversize='subsample', "
                "fewer units per experience, a max_hidden_size or a larger budget"
            )
