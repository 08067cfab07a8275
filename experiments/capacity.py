"""What a run needs of the machine and of its budgets, known before anything trains.

Each check takes a :class:`~clgrow.experiments.config.RunConfig` and raises ``ConfigError``
naming the setting to change: memory from the model's real shapes (traced on PyTorch's ``meta``
device, nothing allocated), SWE's dense coupling at the worst growth step of the run, and the
parameter budget against the model as built.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any

from clgrow.errors import ConfigError
from clgrow.experiments.catalog import (
    IMAGE_SHAPES,
    MODEL_INPUTS,
    N_CLASSES,
    SAMPLE_SHAPES,
    estimate_run_bytes,
    physical_memory,
)

if TYPE_CHECKING:
    from clgrow.experiments.config import RunConfig

__all__ = [
    "site_inputs",
    "check_dense_coupling",
    "check_memory",
    "check_conv_memory",
    "check_external_model",
    "check_svod_copy",
    "check_param_budget",
    "meta_model",
]

#: The growable models clgrow builds (``RunConfig.model``); any other name is traced.
MODELS = ("mlp", "cnn", "resnet")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def site_inputs(cfg: RunConfig) -> list[tuple[int, int | None, int]]:
    """Per site: its fixed inputs per unit, the site below whose units it also reads (or
    ``None``), and how many inputs each unit below gives it (``m = fixed + r·width(below)``)."""
    if cfg.model == "mlp":
        first = MODEL_INPUTS.get(cfg.benchmark, 784)
        return [(first, None, 1)] + [(0, i - 1, 1) for i in range(1, len(cfg.hidden_sizes))]
    c, h, w = IMAGE_SHAPES[cfg.benchmark]
    if cfg.model == "resnet":
        streams = [cfg.nf * 2 ** max(0, s - (b == 0)) for s in range(4) for b in range(2)]
        return [(stream * 9, None, 1) for stream in streams]
    convs = [x for x in cfg.channels if isinstance(x, int)]
    pools = cfg.channels.count("M")
    out: list[tuple[int, int | None, int]] = [(c * 9, None, 1)] + [(0, i - 1, 9) for i in range(1, len(convs))]
    n = len(convs)
    out += [(0, n - 1 + i, (h >> pools) * (w >> pools) if i == 0 else 1) for i in range(len(cfg.hidden_sizes))]
    return out


def check_dense_coupling(cfg: RunConfig, swe: dict[str, Any]) -> None:
    """Refuse a dense SWE coupling that some growth step of this run could take over
    ``max_coupling_bytes`` (the step would refuse it mid-stream, after experiences trained).

    The allocation is the distributor's (SVoD's is data-dependent), so the bound is the worst
    one any allocation reaches: at the last step, ``K`` new units in the layer whose old
    width ``s`` times input width ``m`` is largest after the earlier steps' ``K`` units each
    went where they make that product largest (``s`` and ``m`` within the cap)."""
    if swe.get("coupling") != "dense" or swe.get("on_oversize", "error") != "error" or cfg.model not in MODELS:
        return  # a model clgrow does not build: SWE's own guard measures its traced shapes
    budget, k = swe.get("max_coupling_bytes", 2 * 1024**3), cfg.grow.most_units
    if not _number(budget) or not isinstance(k, int) or k < 1:
        return  # the method's own check names a bad budget
    sizes, inputs = cfg.site_sizes(), site_inputs(cfg)
    n = len(sizes)
    layers = cfg.grow.layers if cfg.grow.layers is not None else range(n)
    layers = [i for i in layers if isinstance(i, int) and 0 <= i < n]
    steps = cfg.growth_steps()
    if not layers or steps < 1:
        return
    cap = cfg.grow.max_hidden_size or float("inf")
    grown = k * (steps - 1)  # units the earlier steps added, anywhere among the growing layers
    partners = swe.get("partners")
    worst, where = 0.0, 0
    for i in layers:
        s_lo, s_hi = sizes[i], min(cap, sizes[i] + grown)
        fixed, below, r = inputs[i]
        m_lo = fixed + (r * sizes[below] if below is not None else 0)
        # units the layer below can still take (each adds r inputs here); the earlier steps'
        # units are shared: g here and up to grown - g below
        room_below = 0.0
        if below is not None and below in layers:
            room_below = min(cap, sizes[below] + grown) - sizes[below]
        room_here = s_hi - s_lo

        def product(
            g: float, s_lo: float = s_lo, m_lo: float = m_lo, r: int = r, room_below: float = room_below
        ) -> float:
            s = s_lo + g
            return min(s, partners or s) * (m_lo + r * min(grown - g, room_below))

        balance = (m_lo + r * grown - r * s_lo) / (2 * r)  # where (s_lo + g)(m_lo + r(grown - g)) peaks
        cands = (0.0, room_here, grown - room_below, balance)
        best = max(product(min(max(g, 0.0), room_here)) for g in cands)
        cost = 16 * k * best
        if cost > worst:
            worst, where = cost, i
    if worst > budget:
        raise ConfigError(
            f"grow.extender_kwargs.max_coupling_bytes: a dense SWE coupling for K={k} units can need up to "
            f"{worst / 2**20:.2f} MiB at the last of {steps} growth step(s) (layer {where}, if the distributor "
            f"puts the units there), over max_coupling_bytes={budget}; use the factored coupling, "
            "on_oversize='subsample', fewer units per experience, a max_hidden_size or a larger budget"
        )


def check_memory(cfg: RunConfig) -> None:
    """Refuse, with the figure, a run whose model and stream cannot fit in this machine's memory
    (``neurons_per_experience`` or ``n_experiences`` in the millions), before anything is built."""
    total = physical_memory()
    if total is None or cfg.model not in MODELS:
        return  # a model clgrow does not build is measured from its trace (check_methods)
    grows = cfg.grows or cfg.match_final_size is not None
    k = (cfg.grow.most_units or 0) if grows else 0
    need, how, parts = estimate_run_bytes(
        cfg.benchmark,
        cfg.site_sizes(),
        cfg.n_experiences,
        k,
        cfg.grow.grow_from_experience,
        cfg.grow.max_hidden_size,
        cfg.grow.disruption_probe,
    )
    if need > 0.9 * total:
        largest = max(parts, key=lambda p: parts[p])
        initial = sum(cfg.site_sizes())
        grown = k * max(0, cfg.n_experiences - cfg.grow.grow_from_experience)
        # what the model grows to: a large step, or a modest step taken over very many experiences
        grew = "grow.neurons_per_experience" if k > initial else "n_experiences"
        field = {
            "parameters": grew if grown > initial else _widths_field(cfg),
            "probes": "grow.disruption_probe",
            "experiences": "n_experiences",
        }[largest]
        raise ConfigError(
            f"{field}: this run would hold at least {need / 2**30:,.1f} GiB of memory ({how}) and this machine "
            f"has {total / 2**30:.1f} GiB; grow fewer units per experience, cap them with max_hidden_size, keep "
            "fewer disruption probes, or run fewer experiences"
        )


def _widths_field(cfg: RunConfig) -> str:
    """The setting that sets the model's widths (what a refusal about its size names)."""
    return {"mlp": "hidden_sizes", "cnn": "channels", "resnet": "nf"}.get(cfg.model, "model")


def check_conv_memory(cfg: RunConfig) -> None:
    """Refuse a convolutional model whose activations would not fit in memory: the model is
    built on PyTorch's ``meta`` device (no memory) and its forward traced for every tensor."""
    from clgrow.experiments.models import activation_bytes

    total = physical_memory()
    if total is None:
        return
    shape = IMAGE_SHAPES[cfg.benchmark]
    sizes = cfg.site_sizes()
    model = meta_model(cfg, sizes)
    act = activation_bytes(model, shape, False, device="meta")
    # training keeps every activation and its gradient; evaluation at most every activation
    need = max(2 * act * cfg.train_mb_size, act * cfg.eval_mb_size)
    if need > 0.9 * total:
        raise ConfigError(
            f"{_widths_field(cfg)}: model {cfg.model!r} (layer widths {sizes}) keeps {act / 2**20:,.1f} MiB of activations "
            f"per sample, at least {need / 2**30:,.1f} GiB for batches of {cfg.train_mb_size} (training) and "
            f"{cfg.eval_mb_size} (evaluation), and this machine has {total / 2**30:.1f} GiB; use fewer "
            "channels or smaller batches"
        )


def meta_model(cfg: RunConfig, sizes: list[int]) -> Any:
    """The model clgrow builds for ``cfg`` with its sites at ``sizes``, on PyTorch's ``meta`` device
    (shapes without memory), as growth sees it: one head as the run starts it (a task's classes with
    task labels, every class without); an MLP on CIFAR without the runner's small backbone."""
    import torch

    from clgrow.experiments.models import own_model
    from clgrow.sites import as_growable

    classes = N_CLASSES.get(cfg.benchmark, 10)
    head = classes // cfg.n_experiences if cfg.task_labels and classes % cfg.n_experiences == 0 else classes
    shape = IMAGE_SHAPES.get(cfg.benchmark)
    with torch.device("meta"):
        return as_growable(own_model(cfg, sizes, head, MODEL_INPUTS.get(cfg.benchmark, 784), shape))


def check_svod_copy(cfg: RunConfig, growth: Any) -> None:
    """Refuse an SVoD whose candidate copy some growth step of this run could take over
    ``max_copy_bytes`` (the step would refuse it mid-stream): the copy is priced on the model with
    the widths the earlier steps' units make worst (all in one layer, or split between two
    neighbouring layers where their product peaks), within the cap, at the last step."""
    from clgrow.methods.svod import SVoD
    from clgrow.registry import distributors

    if growth is None or growth.distributor != "svod" or cfg.model not in MODELS:
        return
    svod: Any = distributors.params("svod").build(growth.distributor_kwargs)
    k, steps = growth.most_units, cfg.growth_steps()
    if svod.on_oversize != "error" or not isinstance(k, int) or k < 1 or steps < 1:
        return
    sizes = cfg.site_sizes()
    layers = [i for i in (growth.layers if growth.layers is not None else range(len(sizes))) if i < len(sizes)]
    if not layers:
        return
    cap, grown = growth.max_hidden_size or math.inf, k * (steps - 1)  # units the earlier steps added

    def widths(extra: dict[int, float]) -> list[int]:
        return [int(min(cap, s + extra.get(i, 0))) for i, s in enumerate(sizes)]

    # the copy grows with products of neighbouring widths: its worst is every earlier unit in one
    # layer, or split between two neighbours where their product peaks (or spread over all)
    trials = [widths({i: grown}) for i in layers] + [widths({i: grown / len(layers) for i in layers})]
    for a, b in itertools.pairwise(layers):
        if b == a + 1:
            x = min(max((grown + sizes[b] - sizes[a]) / 2, 0), grown)
            trials.append(widths({a: x, b: grown - x}))
    need, widest = 0, trials[0]
    for w in trials:
        model = meta_model(cfg, w)
        bytes_ = SVoD.copy_bytes(model, svod.per_layer(model.hidden_sizes, k, layers), layers)
        need, widest = max((need, widest), (bytes_, w))
    if need > svod.max_copy_bytes:
        raise ConfigError(
            f"grow.distributor_kwargs.max_copy_bytes: SVoD's candidate copy for K={k} units with "
            f"{svod.candidates}x candidates can need up to {need:,} bytes at the last of {steps} growth "
            f"step(s) (layer widths {widest}), over max_copy_bytes={svod.max_copy_bytes}; grow fewer units per "
            "step, use --svod-candidates 1 or --svod-on-oversize reduce, cap widths with max_hidden_size, or raise "
            "--svod-max-copy-bytes"
        )


def run_head(cfg: RunConfig) -> int:
    """Outputs of the model's head (per task, with task labels), as the run builds it."""
    classes = N_CLASSES.get(cfg.benchmark, 10)
    return classes // cfg.n_experiences if cfg.task_labels else classes


def check_external_model(cfg: RunConfig) -> Any:
    """Build a model clgrow does not build (on the ``meta`` device where it can), trace it on a
    sample of the shape the run feeds, and refuse (with its layers and why) one without a growth
    site where the run grows, prunes or resets, or one whose parameters, optimizer state and
    activations would not fit in memory. Returns its ``SiteMap``. What only the data can show
    (dtype, task labels, the scores against the labels) is checked on the first batch, by the run
    and ``--check`` alike (:mod:`clgrow.experiments.preflight`)."""
    import torch

    from clgrow.experiments.models import activation_bytes, load_model, trace_model

    shape = SAMPLE_SHAPES.get(cfg.benchmark, (784,))
    classes = run_head(cfg)
    try:  # on the meta device: a model too large for memory is measured, not allocated
        with torch.device("meta"):
            model = load_model(cfg.model, cfg.model_args, classes, math.prod(shape))
        found = trace_model(model, shape, cfg.model, cfg.task_labels)
    except (ConfigError, NotImplementedError, RuntimeError):  # a model that computes on values
        model = load_model(cfg.model, cfg.model_args, classes, math.prod(shape))
        found = trace_model(model, shape, cfg.model, cfg.task_labels)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    changes = cfg.grows or cfg.prune != "none" or cfg.plasticity != "none"
    if changes and not found.sites:
        raise ConfigError(f"model: {cfg.model} has no growth site.\n{found.describe()}")
    total = physical_memory()
    if total is not None:
        params = sum(p.numel() * p.element_size() for p in model.parameters())
        try:
            act = activation_bytes(model, shape, cfg.task_labels, device=str(device))
        except Exception:  # an op with no meta kernel: the preflight runs the model itself on the first batch
            act = 0
        need = 4 * params + max(2 * act * cfg.train_mb_size, act * cfg.eval_mb_size)
        if need > 0.9 * total:
            raise ConfigError(
                f"{'model_args' if cfg.model_args else 'model'}: model {cfg.model} would hold at least {need / 2**30:,.1f} GiB (parameters, "
                f"gradients and two optimizer moments: {4 * params / 2**30:,.2f} GiB; activations: "
                f"{act / 2**20:,.1f} MiB per sample, batches of {cfg.train_mb_size} and {cfg.eval_mb_size}) "
                f"and this machine has {total / 2**30:.1f} GiB"
            )
    return found


def check_param_budget(cfg: RunConfig) -> None:
    """Refuse a parameter budget (``grow.max_params``) below the model as built: nothing could grow,
    and the run would refuse it once the model exists (the budget is counted on the same model,
    built on the ``meta`` device)."""
    from clgrow.strategies.schedule import over_budget

    budget = cfg.grow.max_params
    if budget is None or cfg.model not in MODELS:
        return
    why = over_budget(meta_model(cfg, cfg.site_sizes()), budget)
    if why is not None:
        raise ConfigError(f"grow.max_params: {why}")
