"""Run and grid configurations, validated field by field (errors name the field).

A grid is a TOML file::

    [grid]
    benchmark = "split-mnist-5k"
    strategies = ["naive", "replay"]
    growth = ["none", "fixed-final", "random-uniform", "swe-uniform", "swe-svod"]
    seeds = [0, 1]

    [run]                      # any RunConfig field, shared by every cell
    hidden_sizes = [64, 64]

    [run.grow]                 # any GrowthConfig field but the method (that is the growth axis)
    neurons_per_experience = 32
    extender_kwargs = { passes = 0.5 }

    [strategy.replay]          # hyperparameters of one strategy
    mem_size = 200

    plasticity = ["none", "redo"]   # in [grid]: a plasticity axis (ReDo, continual backprop)
    [plasticity.redo]          # arguments of one plasticity method
    tau = 0.1

``fixed-final`` is the fair fixed-size baseline: no growth, at the final widths reached by the
growth named in ``match_growth`` (default ``swe-svod``) for the same strategy and seed.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clgrow.config import TRAINING, GrowthConfig, growth_from_method, growth_methods, parse_growth
from clgrow.errors import ConfigError, GrowthError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
from clgrow.experiments.catalog import BENCHMARK_NAMES as BENCHMARKS
from clgrow.experiments.catalog import (
    IMAGE_SHAPES,
    MODEL_INPUTS,
    DataMissingError,
    check_benchmark,
    check_data,
    estimate_run_bytes,
    physical_memory,
)
from clgrow.experiments.loggers import check_loggers
from clgrow.registry import import_modules, resetters, strategies
from clgrow.strategies.declared import OPTIMIZERS, reference_strategies

__all__ = [
    "ConfigError",
    "RunConfig",
    "ResolvedRun",
    "GridConfig",
    "load_grid",
    "FIXED_FINAL",
    "FIXED_COMPUTE",
    "FIXED",
]

FIXED_FINAL = "fixed-final"
#: A fixed model at the final widths, trained for the multiply-adds the growth spent (grid entry).
FIXED_COMPUTE = "fixed-compute"
FIXED = (FIXED_FINAL, FIXED_COMPUTE)
MAX_SEED = 2**32 - 1  # numpy's seeds stop there


#: The growable models a run can use (``RunConfig.model``).
MODELS = ("mlp", "cnn", "resnet")


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


#: What build_strategy sets itself; a strategy hyperparameter of the same name would clash.
_BUILD_KEYS = (
    "model",
    "optimizer",
    "criterion",
    "train_mb_size",
    "train_epochs",
    "eval_mb_size",
    "device",
    "evaluator",
    "plugins",
)


def check_strategy_kwargs(strategy: str, kwargs: dict[str, Any], where: str = "strategy_kwargs") -> None:
    """Refuse hyperparameters that clash with run or growth settings, or that the strategy's
    declaration refuses (unknown names, types, ranges), without importing Avalanche."""
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{where}: must be a table of hyperparameters (got {kwargs!r})")
    run_fields = {f.name for f in dataclasses.fields(RunConfig)}
    for key in kwargs:
        if key in run_fields or key in _BUILD_KEYS:
            raise ConfigError(
                f"{where}.{key}: a run setting, not a strategy hyperparameter; set it as the run's "
                f"{key} (CLI flag or [run] field)"
            )
        if key in GrowthConfig.field_names():
            raise ConfigError(
                f"{where}.{key}: a growth setting; set it in [run.grow] or with its --{key.replace('_', '-')} flag"
            )
    try:
        strategies.params(strategy).build(kwargs)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def check_plasticity(name: str, kwargs: dict[str, Any], where: str = "plasticity_kwargs") -> None:
    """Refuse an unknown plasticity method or arguments its declaration refuses (no torch)."""
    if name == "none":
        if kwargs:
            raise ConfigError(f"{where}: {sorted(kwargs)} given, but plasticity is 'none'")
        return
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{where}: must be a table of arguments (got {kwargs!r})")
    try:
        resetters.params(name).build(kwargs)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


#: ``prune``: no pruning, or how units leave (``clgrow.prune.METHODS``, spelled here without torch).
PRUNE_CHOICES = ("none", "drop", "swe")
#: ``prune_select``: which units leave (``clgrow.strategies.prune_plugin.PRUNE_SELECTORS``).
PRUNE_SELECT = ("dead", "dormant")


@dataclass
class RunConfig:
    """Everything one run needs; defaults make a small, quick run."""

    benchmark: str = "split-mnist-5k"
    n_experiences: int = 5
    class_order_seed: int = 0
    task_labels: bool = False
    data_root: str | None = None
    imports: list[str] = field(default_factory=list)
    strategy: str = "naive"
    strategy_kwargs: dict[str, Any] = field(default_factory=dict)
    growth: str = "swe-svod"
    grow: GrowthConfig = field(default_factory=GrowthConfig)
    plasticity: str = "none"
    plasticity_kwargs: dict[str, Any] = field(default_factory=dict)
    match_final_size: str | None = None
    #: With ``match_final_size``: also train for the multiply-adds the growth run spent
    #: (training and growth), by choosing the number of epochs (a ``fixed-compute`` row).
    match_compute: bool = False
    #: Prune hidden units at each new experience before growth: ``none``, ``drop`` or ``swe``
    #: (SWE's reverse transfer first); which units: ``prune_select`` = ``dead`` or ``dormant``
    #: (τ-dormant at ``prune_tau``), scored on a sample of every experience seen so far.
    prune: str = "none"
    prune_select: str = "dead"
    prune_tau: float = 0.025
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    #: The growable model: ``mlp`` (``hidden_sizes``), ``cnn`` (``channels`` with ``"M"`` for a
    #: 2×2 max-pool, batch norm if ``batch_norm``, then the ``hidden_sizes`` linear layers) or
    #: ``resnet`` (a ResNet-18 of first width ``nf`` whose blocks' inner channels grow; no linear
    #: hidden layers). Convolutional models read the benchmark's images (``IMAGE_SHAPES``).
    model: str = "mlp"
    #: Keyword arguments of a model named by Avalanche name or import path (``--model-arg``).
    model_args: dict[str, Any] = field(default_factory=dict)
    channels: list[int | str] = field(default_factory=lambda: [16, "M", 32, "M"])
    batch_norm: bool = True
    nf: int = 20
    optimizer: str = "adam"
    lr: float = TRAINING.lr
    momentum: float | None = None
    weight_decay: float = 0.0
    device: str = "auto"
    train_epochs: int = TRAINING.train_epochs
    train_mb_size: int = TRAINING.train_mb_size
    eval_mb_size: int = TRAINING.eval_mb_size
    tau: float = 0.025
    seed: int = 0
    #: Restart the optimizer's state at every experience, for every row alike (grown, fixed or
    #: none): a state carried across a task switch kills units of every model (BENCHMARKS.md).
    reset_optimizer: bool = True
    threads: int | None = None
    #: Where metrics go besides metrics.csv (always written): ``tensorboard``, ``wandb``.
    loggers: list[str] = field(default_factory=lambda: ["csv"])

    def __post_init__(self) -> None:
        if isinstance(self.grow, dict):  # plain data from TOML or summary.json
            self.grow = GrowthConfig.from_dict(self.grow, where="grow")

    def validate(self, methods: bool = True) -> RunConfig:
        """Raise ``ConfigError`` naming the first invalid field; return ``self``.

        ``methods=False`` leaves out the checks that import torch (probing the device, Avalanche's
        own checks of the strategy's hyperparameters); see :meth:`check_methods`.
        """
        self._validate(methods)
        return self

    def _validate(self, methods: bool) -> GrowthConfig | None:
        """:meth:`validate`, returning the run's growth settings (``None``: no growth)."""

        def need(cond: bool, name: str, msg: str) -> None:
            if not cond:
                raise ConfigError(f"{name}: {msg} (got {getattr(self, name)!r})")

        need(isinstance(self.imports, list), "imports", "must be a list of module names")
        import_modules(self.imports)  # their methods register before any name is looked up
        check_loggers(self.loggers)
        need(self.benchmark in BENCHMARKS, "benchmark", f"must be one of {', '.join(BENCHMARKS)}")
        need(
            isinstance(self.strategy, str) and self.strategy in strategies,
            "strategy",
            f"must be one of {', '.join(strategies)}",
        )
        reference = self.strategy in reference_strategies()
        method = None  # the growth's method fields (None: no growth, or fixed-final)
        if self.growth not in FIXED:
            try:
                method = growth_methods(self.growth)
            except ConfigError as err:
                raise ConfigError(f"growth: {err}") from None
        if self.match_final_size is not None:
            try:
                need(growth_methods(self.match_final_size) is not None, "match_final_size", "must name a growth method")
            except ConfigError as err:
                raise ConfigError(f"match_final_size: {err}") from None
        if reference:
            need(
                self.growth == "none" and self.match_final_size is None,
                "growth",
                f"strategy {self.strategy!r} is a reference row without growth: use growth 'none'",
            )
        if self.strategy == "der":
            need(
                self.task_labels is not True,
                "task_labels",
                "strategy 'der' is class-incremental: it stores logits without task labels, which a model with "
                "one head per task does not give; drop --task-labels or use another strategy",
            )
        if self.strategy == "pnn":
            need(
                self.task_labels is True,
                "task_labels",
                "strategy 'pnn' is task-incremental: it needs task labels (--task-labels, task_labels = true)",
            )
            need(
                isinstance(self.hidden_sizes, list) and len(set(self.hidden_sizes)) == 1,
                "hidden_sizes",
                "strategy 'pnn' builds columns of one width: give equal hidden sizes",
            )
        need(
            self.plasticity == "none" or (isinstance(self.plasticity, str) and self.plasticity in resetters),
            "plasticity",
            f"must be one of none, {', '.join(resetters)}",
        )
        need(isinstance(self.plasticity_kwargs, dict), "plasticity_kwargs", "must be a table")
        check_plasticity(self.plasticity, self.plasticity_kwargs)
        if reference:
            need(
                self.plasticity == "none",
                "plasticity",
                f"strategy {self.strategy!r} is a reference row without resets: use plasticity 'none'",
            )
        need(isinstance(self.grow, GrowthConfig), "grow", "must be a table of growth settings")
        default = GrowthConfig()
        for name in ("extender", "distributor"):
            if getattr(self.grow, name) != getattr(default, name):
                raise ConfigError(
                    f"grow.{name}: the growth method is set by growth (a preset or "
                    f"'EXTENDER+DISTRIBUTOR'), not here (got {getattr(self.grow, name)!r})"
                )
        self.grow.validate(prefix="grow.", methods=False)
        need(
            not callable(self.grow.neurons_per_experience),
            "grow",
            "neurons_per_experience must be an integer in a run configuration",
        )
        for name in ("n_experiences", "train_epochs", "train_mb_size", "eval_mb_size"):
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 1, name, "must be an integer >= 1")
        for name in ("seed", "class_order_seed"):
            v = getattr(self, name)
            need(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SEED,
                name,
                f"must be an integer in [0, {MAX_SEED}]",
            )
        need(
            isinstance(self.hidden_sizes, list)
            and len(self.hidden_sizes) >= 1
            and all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in self.hidden_sizes),
            "hidden_sizes",
            "must be a non-empty list of integers >= 1",
        )
        self._validate_model(need)
        self._check_schedule()
        need(self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        need(_number(self.lr) and self.lr > 0, "lr", "must be a finite number > 0")
        need(
            self.momentum is None or (_number(self.momentum) and 0 <= self.momentum < 1),
            "momentum",
            "must be a number in [0, 1) or absent",
        )
        need(
            self.momentum is None or self.optimizer == "sgd",
            "momentum",
            f"applies to optimizer 'sgd' only (optimizer is {self.optimizer!r})",
        )
        need(_number(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "must be a finite number >= 0")
        need(_number(self.tau) and self.tau >= 0, "tau", "must be a finite number >= 0")
        need(isinstance(self.reset_optimizer, bool), "reset_optimizer", "must be true or false")
        need(
            self.threads is None
            or (isinstance(self.threads, int) and not isinstance(self.threads, bool) and self.threads >= 1),
            "threads",
            "must be an integer >= 1 or absent",
        )
        need(
            self.data_root is None or (isinstance(self.data_root, str) and self.data_root.strip() != ""),
            "data_root",
            "must be a path (a non-empty string) or absent",
        )
        need(isinstance(self.task_labels, bool), "task_labels", "must be true or false")
        need(isinstance(self.match_compute, bool), "match_compute", "must be true or false")
        need(self.prune in PRUNE_CHOICES, "prune", f"must be one of {', '.join(PRUNE_CHOICES)}")
        need(
            self.prune_select in PRUNE_SELECT,
            "prune_select",
            f"must be one of {', '.join(PRUNE_SELECT)} (which units a prune removes)",
        )
        need(_number(self.prune_tau) and self.prune_tau >= 0, "prune_tau", "must be a finite number >= 0")
        need(
            self.prune == "none" or not reference, "prune", f"strategy {self.strategy!r} is a reference row: use 'none'"
        )
        need(
            not self.match_compute or self.match_final_size is not None,
            "match_compute",
            "applies to a fixed model matched to a growth run (match_final_size)",
        )
        try:
            check_benchmark(self.benchmark, self.n_experiences, self.task_labels)
        except ValueError as err:
            raise ConfigError(f"benchmark: {err}") from None
        try:  # an on-disk benchmark's files are there (a check of names, nothing is read)
            check_data(self.benchmark, self.data_root)
        except DataMissingError as err:
            raise ConfigError(f"data_root: {err}") from None
        sizes = self.site_sizes()
        n = len(sizes)
        where = f"hidden_sizes {sizes}" if self.model == "mlp" else f"model {self.model!r} (layer widths {sizes})"
        layer = self.grow.distributor_kwargs.get("layer") if method else None
        if (
            n
            and method
            and method.get("distributor") == "fixed"
            and isinstance(layer, int)
            and not isinstance(layer, bool)
        ):
            if not -n <= layer < n:
                raise ConfigError(
                    f"grow.distributor_kwargs.layer: layer {layer} does not exist: {where} has layers "
                    f"0..{n - 1} (or -{n}..-1)"
                )
        if method and method.get("extender") == "swe":
            self._check_dense_coupling({**method.get("extender_kwargs", {}), **self.grow.extender_kwargs})
        if self.grow.layers is not None and self.growth not in ("none", *FIXED):
            beyond = [i for i in self.grow.layers if i >= n]
            if beyond:
                raise ConfigError(f"grow.layers: layers {beyond} do not exist: {where} has layers 0..{n - 1}")
        cap = self.grow.max_hidden_size
        if cap is not None and self.growth not in ("none", *FIXED) and self.match_final_size is None:
            need(
                cap > min(sizes),
                "grow",
                f"max_hidden_size {cap} leaves no room above the initial widths {sizes}: nothing would grow",
            )
        try:  # the methods' arguments, by their declarations (nothing is built)
            growth = growth_from_method(method, base=self.grow)
        except GrowthError as err:
            raise ConfigError(f"grow: {err}") from None
        self.check_memory()
        need(isinstance(self.strategy_kwargs, dict), "strategy_kwargs", "must be a table")
        check_strategy_kwargs(self.strategy, self.strategy_kwargs)
        if methods:
            self.check_methods()
        return None if self.match_final_size or self.growth in FIXED else growth

    def _check_schedule(self) -> None:
        k = self.grow.neurons_per_experience
        if isinstance(k, list) and self.growth not in ("none", *FIXED) and _whole(self.train_epochs):
            steps = self.growth_steps()
            if len(k) != steps:
                raise ConfigError(
                    f"grow.neurons_per_experience: {len(k)} counts given, one per growth step, but this run "
                    f"takes {steps} growth step(s)"
                )

    def _validate_model(self, need: Callable[[bool, str, str], None]) -> None:
        from clgrow.experiments.models import check_model_name, is_external

        need(isinstance(self.model_args, dict), "model_args", "must be a table of keyword arguments")
        if is_external(self.model) or self.model not in MODELS:
            why = check_model_name(self.model) if isinstance(self.model, str) else "must be a string"
            need(why is None, "model", why or "")
            need(
                self.strategy != "pnn",
                "strategy",
                f"'pnn' builds its own MLP columns; use model 'mlp', not {self.model!r}",
            )
            need(
                self.match_final_size is None,
                "match_final_size",
                f"a fixed model at the grown widths is built by clgrow; {self.model!r} is not (compare with 'none')",
            )
            return
        need(not self.model_args, "model_args", f"apply to a model named by import path, not {self.model!r}")
        if self.model == "mlp":
            return
        need(
            self.benchmark in IMAGE_SHAPES,
            "benchmark",
            f"model {self.model!r} reads images; {self.benchmark!r} has none (use one of {', '.join(IMAGE_SHAPES)})",
        )
        need(
            self.strategy != "pnn", "strategy", f"'pnn' builds its own MLP columns; use model 'mlp', not {self.model!r}"
        )
        need(isinstance(self.batch_norm, bool), "batch_norm", "must be true or false")
        need(_whole(self.nf) and self.nf >= 1, "nf", "must be an integer >= 1")
        if self.model == "cnn":
            spec = self.channels
            ok = isinstance(spec, list) and bool(spec) and _whole(spec[0]) and spec[0] >= 1  # type: ignore[operator]
            ok = ok and all(c == "M" or (_whole(c) and c >= 1) for c in spec)  # type: ignore[operator]
            ok = ok and not any(a == b == "M" for a, b in itertools.pairwise(spec))
            need(ok, "channels", "must list convolution widths >= 1, each optionally followed by one 'M' (a max-pool)")
            _, h, w = IMAGE_SHAPES[self.benchmark]
            pools = spec.count("M")
            need(
                h >> pools >= 1 and w >> pools >= 1,
                "channels",
                f"{pools} max-pools shrink a {h}x{w} image of {self.benchmark} to nothing",
            )

    def site_sizes(self) -> list[int]:
        """Initial width of every growth site of the model, in the model's layer order (an MLP's
        hidden layers; a CNN's convolutions, then its linear layers; a ResNet's blocks)."""
        if self.model == "cnn":
            return [c for c in self.channels if isinstance(c, int)] + list(self.hidden_sizes)
        if self.model == "resnet":
            return [self.nf * 2**s for s in range(4) for _ in range(2)]
        if self.model not in MODELS:  # traced when the methods are checked
            return []
        return list(self.hidden_sizes)

    def _site_inputs(self) -> list[tuple[int, int | None, int]]:
        """Per site: its fixed inputs per unit, the site below whose units it also reads (or
        ``None``), and how many inputs each unit below gives it (``m = fixed + r·width(below)``)."""
        if self.model == "mlp":
            first = MODEL_INPUTS.get(self.benchmark, 784)
            return [(first, None, 1)] + [(0, i - 1, 1) for i in range(1, len(self.hidden_sizes))]
        c, h, w = IMAGE_SHAPES[self.benchmark]
        if self.model == "resnet":
            streams = [self.nf * 2 ** max(0, s - (b == 0)) for s in range(4) for b in range(2)]
            return [(stream * 9, None, 1) for stream in streams]
        convs = [x for x in self.channels if isinstance(x, int)]
        pools = self.channels.count("M")
        out: list[tuple[int, int | None, int]] = [(c * 9, None, 1)] + [(0, i - 1, 9) for i in range(1, len(convs))]
        n = len(convs)
        out += [(0, n - 1 + i, (h >> pools) * (w >> pools) if i == 0 else 1) for i in range(len(self.hidden_sizes))]
        return out

    def growth_steps(self) -> int:
        """Growth steps the run takes at most: one at each experience from ``grow_from_experience``,
        and one every ``grow_every_epochs`` epochs inside every experience."""
        g = self.grow
        at_start = max(0, self.n_experiences - g.grow_from_experience)
        every = g.grow_every_epochs
        staged = (self.train_epochs - 1) // every if every else 0
        return at_start + self.n_experiences * staged

    def _check_dense_coupling(self, swe: dict[str, Any]) -> None:
        """Refuse a dense SWE coupling that some growth step of this run could take over
        ``max_coupling_bytes`` (the step would refuse it mid-stream, after experiences trained).

        The allocation is the distributor's (SVoD's is data-dependent), so the bound is the worst
        one any allocation reaches: at the last step, ``K`` new units in the layer whose old
        width ``s`` times input width ``m`` is largest after the earlier steps' ``K`` units each
        went where they make that product largest (``s`` and ``m`` within the cap)."""
        if swe.get("coupling") != "dense" or swe.get("on_oversize", "error") != "error" or self.model not in MODELS:
            return  # a model clgrow does not build: SWE's own guard measures its traced shapes
        budget, k = swe.get("max_coupling_bytes", 2 * 1024**3), self.grow.most_units
        if not _number(budget) or not isinstance(k, int) or k < 1:
            return  # the method's own check names a bad budget
        sizes, inputs = self.site_sizes(), self._site_inputs()
        n = len(sizes)
        layers = self.grow.layers if self.grow.layers is not None else range(n)
        layers = [i for i in layers if isinstance(i, int) and 0 <= i < n]
        steps = self.growth_steps()
        if not layers or steps < 1:
            return
        cap = self.grow.max_hidden_size or float("inf")
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

    def check_memory(self) -> None:
        """Refuse, with the figure, a run whose model and stream cannot fit in this machine's memory
        (``neurons_per_experience`` or ``n_experiences`` in the millions), before anything is built."""
        total = physical_memory()
        if total is None or self.model not in MODELS:
            return  # a model clgrow does not build is measured from its trace (check_methods)
        grows = self.growth not in ("none", *FIXED) or self.match_final_size is not None
        k = (self.grow.most_units or 0) if grows else 0
        need, how = estimate_run_bytes(
            self.benchmark,
            self.site_sizes(),
            self.n_experiences,
            k,
            self.grow.grow_from_experience,
            self.grow.max_hidden_size,
            self.grow.disruption_probe,
        )
        if need > 0.9 * total:
            raise ConfigError(
                f"memory: this run would hold at least {need / 2**30:,.1f} GiB ({how}) and this machine has "
                f"{total / 2**30:.1f} GiB; grow fewer units per experience, cap them with max_hidden_size, or "
                "run fewer experiences"
            )

    def check_conv_memory(self) -> None:
        """Refuse a convolutional model whose activations would not fit in memory: the model is
        built on PyTorch's ``meta`` device (no memory) and its forward traced for every tensor."""
        import torch

        from clgrow import GrowableCNN, GrowableResNet
        from clgrow.experiments.catalog import IMAGE_SHAPES
        from clgrow.experiments.models import activation_bytes

        total = physical_memory()
        if total is None:
            return
        shape = IMAGE_SHAPES[self.benchmark]
        sizes = self.site_sizes()
        with torch.device("meta"):
            if self.model == "resnet":
                model: torch.nn.Module = GrowableResNet(shape, 10, nf=self.nf, inner=sizes)
            else:
                widths = iter(sizes)
                spec = [c if c == "M" else next(widths) for c in self.channels]
                model = GrowableCNN(shape, spec, list(widths), 10, batch_norm=self.batch_norm)
        act = activation_bytes(model, shape, False, device="meta")
        # training keeps every activation and its gradient; evaluation at most every activation
        need = max(2 * act * self.train_mb_size, act * self.eval_mb_size)
        if need > 0.9 * total:
            raise ConfigError(
                f"memory: model {self.model!r} (layer widths {sizes}) keeps {act / 2**20:,.1f} MiB of activations "
                f"per sample, at least {need / 2**30:,.1f} GiB for batches of {self.train_mb_size} (training) and "
                f"{self.eval_mb_size} (evaluation), and this machine has {total / 2**30:.1f} GiB; use fewer "
                "channels or smaller batches"
            )

    def check_external_model(self) -> Any:
        """Build a model clgrow does not build, trace it on this benchmark's input shape, and refuse
        (with its layers and why) one without a growth site where the run grows, prunes or resets,
        or one whose parameters, optimizer state and activations would not fit in memory. Returns
        its ``SiteMap``."""
        import torch

        from clgrow.experiments.catalog import IMAGE_SHAPES, MODEL_INPUTS
        from clgrow.experiments.models import activation_bytes, load_model, trace_model

        shape = IMAGE_SHAPES.get(self.benchmark) or (MODEL_INPUTS.get(self.benchmark, 784),)
        classes = 2 if self.task_labels else 10
        try:  # on the meta device: a model too large for memory is measured, not allocated
            with torch.device("meta"):
                model = load_model(self.model, self.model_args, classes, math.prod(shape))
            found = trace_model(model, shape, self.model, self.task_labels)
        except (ConfigError, NotImplementedError, RuntimeError):  # a model that computes on values
            model = load_model(self.model, self.model_args, classes, math.prod(shape))
            found = trace_model(model, shape, self.model, self.task_labels)
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        changes = self.growth not in ("none", *FIXED) or self.prune != "none" or self.plasticity != "none"
        if changes and not found.sites:
            raise ConfigError(f"model: {self.model} has no growth site.\n{found.describe()}")
        total = physical_memory()
        if total is not None:
            params = sum(p.numel() * p.element_size() for p in model.parameters())
            act = activation_bytes(model, shape, self.task_labels, device=str(device))
            need = 4 * params + max(2 * act * self.train_mb_size, act * self.eval_mb_size)
            if need > 0.9 * total:
                raise ConfigError(
                    f"memory: model {self.model} would hold at least {need / 2**30:,.1f} GiB (parameters, "
                    f"gradients and two optimizer moments: {4 * params / 2**30:,.2f} GiB; activations: "
                    f"{act / 2**20:,.1f} MiB per sample, batches of {self.train_mb_size} and {self.eval_mb_size}) "
                    f"and this machine has {total / 2**30:.1f} GiB"
                )
        return found

    def check_methods(self) -> None:
        """The checks that build the methods (their own argument checks) or probe the device.

        They import torch, so they come after every check that does not: a command line with a
        mistake elsewhere answers without that import.
        """
        from clgrow.experiments.device import resolve_device

        try:
            resolve_device(self.device)
        except ValueError as err:
            raise ConfigError(f"device: {err}") from None
        if self.model not in MODELS:
            self.check_external_model()
        elif self.model != "mlp":
            self.check_conv_memory()
        if self.strategy_kwargs:  # what only Avalanche's class knows it refuses (it is built once, on one unit)
            from clgrow.strategies.builders import check_hyperparameters

            try:
                check_hyperparameters(self.strategy, self.strategy_kwargs)
            except GrowthError as err:
                raise ConfigError(f"strategy_kwargs: {err}") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "run", methods: bool = True) -> RunConfig:
        """Build from a mapping, refusing unknown fields by name (``methods``: as in :meth:`validate`)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        data = dict(data)
        if "grow" in data:
            data["grow"] = GrowthConfig.from_dict(data["grow"], where=f"{where}.grow")
        return cls(**data).validate(methods=methods)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON/TOML friendly)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["grow"] = self.grow.to_dict()
        return copy.deepcopy(out)

    def growth_config(self) -> GrowthConfig | None:
        """The growth method of ``growth`` with this run's settings from ``grow`` (None: no growth)."""
        if self.match_final_size or self.growth in FIXED:
            return None
        return parse_growth(self.growth, base=self.grow)

    @property
    def growth_label(self) -> str:
        """Name of the growth setting for tables (``fixed-final`` for matched fixed models)."""
        if self.match_final_size:
            return FIXED_COMPUTE if self.match_compute else FIXED_FINAL
        return self.growth

    def resolve(self) -> ResolvedRun:
        """Validate once and build what the run uses: the growth method's extender and distributor,
        the plasticity method and the strategy's hyperparameters (imports torch).

        The runner and ``build_strategy`` take these objects and parse no name again.
        """
        growth = self._validate(methods=True)
        if growth is not None:  # built here, once; the plugin takes the instances
            extender, distributor = growth.build()
            growth = dataclasses.replace(
                growth, extender=extender, distributor=distributor, extender_kwargs={}, distributor_kwargs={}
            )
        resetter = None
        if self.plasticity != "none":
            resetter = resetters.build(self.plasticity, self.plasticity_kwargs)
        return ResolvedRun(self, growth, resetter, strategies.params(self.strategy).build(self.strategy_kwargs))


@dataclass(frozen=True)
class ResolvedRun:
    """A run configuration validated and resolved into built objects (:meth:`RunConfig.resolve`).

    Attributes
    ----------
    config : RunConfig
        The settings as given (what ``summary.json`` records).
    growth : GrowthConfig or None
        The growth settings with the extender and distributor built (``None``: no growth).
    resetter : Resetter or None
        The plasticity method, built (``None``: no resets).
    hyperparameters : Params
        The strategy's hyperparameters, validated by its declaration.
    """

    config: RunConfig
    growth: GrowthConfig | None
    resetter: Any
    hyperparameters: Any


def parse_baseline(text: str) -> tuple[str | None, str, str]:
    """``(strategy or None, growth, plasticity)`` of a baseline written ``[STRATEGY/]GROWTH[/PLASTICITY]``.

    Without a strategy, each strategy's rows are compared with its own row of that growth.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"baseline: give [STRATEGY/]GROWTH[/PLASTICITY] (got {text!r})")
    parts = [p.strip() for p in text.split("/")]
    strategy = parts.pop(0) if parts[0] in strategies else None
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise ConfigError(f"baseline: give [STRATEGY/]GROWTH[/PLASTICITY] (got {text!r})")
    return strategy, parts[0], parts[1] if len(parts) == 2 else "none"


@dataclass
class GridConfig:
    """A grid of runs: strategies x growth settings x seeds over one shared RunConfig."""

    base: RunConfig
    strategies: list[str]
    growth: list[str]
    seeds: list[int]
    strategy_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    match_growth: str = "swe-svod"
    plasticity: list[str] = field(default_factory=lambda: ["none"])
    plasticity_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The prune axis: ``none``, ``drop``, ``swe`` (which units: ``[run] prune_select``).
    prune: list[str] = field(default_factory=lambda: ["none"])
    #: The row every other row of its strategy is compared with, paired by seed (:func:`parse_baseline`).
    baseline: str | None = None

    def check_baseline(self, where: str = "grid.baseline") -> None:
        """Refuse a baseline that names no row of this grid."""
        if self.baseline is None:
            return
        try:
            strategy, growth, plasticity = parse_baseline(self.baseline)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        if strategy is not None and strategy not in self.strategies:
            raise ConfigError(f"{where}: strategy {strategy!r} is not in grid.strategies {self.strategies}")
        if growth not in self.growth:
            raise ConfigError(f"{where}: growth {growth!r} is not in grid.growth {self.growth}")
        if plasticity not in self.plasticity:
            raise ConfigError(f"{where}: plasticity {plasticity!r} is not in grid.plasticity {self.plasticity}")

    def cells(self) -> list[RunConfig]:
        """One RunConfig per cell (strategy x growth x plasticity x prune x seed), in that order."""
        out = []
        axes = itertools.product(self.strategies, self.growth, self.plasticity, self.prune)
        for strategy, growth, plasticity, prune in axes:
            if strategy in reference_strategies() and (growth, plasticity, prune) != ("none", "none", "none"):
                continue  # reference rows (joint, pnn) exist without growth, resets or pruning only
            for seed in self.seeds:
                d = self.base.to_dict()
                d.update(
                    strategy=strategy,
                    seed=seed,
                    plasticity=plasticity,
                    prune=prune,
                    strategy_kwargs=dict(self.strategy_kwargs.get(strategy, {})),
                    plasticity_kwargs=dict(self.plasticity_kwargs.get(plasticity, {})),
                )
                if growth in FIXED:
                    d.update(growth="none", match_final_size=self.match_growth, match_compute=growth == FIXED_COMPUTE)
                else:
                    d.update(growth=growth, match_final_size=None, match_compute=False)
                out.append(RunConfig(**d).validate())
        return out


def load_grid(path: str | Path, imports: list[str] | None = None, data_root: str | None = None) -> GridConfig:
    """Read and validate a grid TOML file; ``imports`` are modules to import first, next to its
    ``imports`` key (a command line's ``--import``); ``data_root`` (a command line's
    ``--data-root``) replaces the file's before anything is validated."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {err.start}: {err.reason}); TOML is UTF-8") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read (arrays or tables within each other)") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read ({err.strerror or err})") from None
    unknown = sorted(set(data) - {"grid", "run", "strategy", "plasticity"})
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(unknown)}; known: grid, run, strategy, plasticity")
    for section in ("grid", "run", "strategy", "plasticity"):
        if not isinstance(data.get(section, {}), dict):
            raise ConfigError(f"{path}: [{section}] must be a table (got {data[section]!r})")
    for section, what in (("strategy", "hyperparameters"), ("plasticity", "arguments")):
        for name, table in data.get(section, {}).items():
            if not isinstance(table, dict):
                raise ConfigError(f"{section}.{name}: must be a table of {what} (got {table!r})")
    grid = dict(data.get("grid", {}))
    allowed = {
        "benchmark",
        "strategies",
        "growth",
        "seeds",
        "match_growth",
        "n_experiences",
        "task_labels",
        "data_root",
        "class_order_seed",
        "plasticity",
        "prune",
        "imports",
        "baseline",
        "loggers",
    }
    unknown = sorted(set(grid) - allowed)
    if unknown:
        raise ConfigError(f"grid: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")
    run = dict(data.get("run", {}))
    if data_root is not None:
        grid.pop("data_root", None)
        run["data_root"] = data_root
    for key in ("benchmark", "n_experiences", "task_labels", "data_root", "class_order_seed", "imports", "loggers"):
        if key in grid:
            if key in run and run[key] != grid[key]:
                raise ConfigError(f"{key}: set in [grid] ({grid[key]!r}) and in [run] ({run[key]!r}); keep one")
            run[key] = grid.pop(key)
    for key, axis in (
        ("seed", "grid.seeds"),
        ("strategy", "grid.strategies"),
        ("growth", "grid.growth"),
        ("plasticity", "grid.plasticity"),
        ("plasticity_kwargs", "[plasticity.NAME] tables"),
        ("prune", "grid.prune"),
    ):
        if key in run:
            raise ConfigError(f"run.{key}: a grid sets it per cell from {axis}; remove it from [run]")
    named = run.get("imports", [])
    if not isinstance(named, list):
        raise ConfigError(f"grid.imports: must be a list of module names (got {named!r})")
    run["imports"] = [*named, *(m for m in imports or [] if m not in named)]
    import_modules(run["imports"], where="grid.imports")  # a user's methods and strategies, before names are checked
    grid.setdefault("plasticity", ["none"])
    grid.setdefault("prune", ["none"])
    for key in ("strategies", "growth", "seeds", "plasticity", "prune"):
        if key not in grid:
            raise ConfigError(f"grid.{key}: missing (a list)")
        if not isinstance(grid[key], list) or not grid[key]:
            raise ConfigError(f"grid.{key}: must be a non-empty list (got {grid[key]!r})")
        if not all(isinstance(v, (int, str)) for v in grid[key]):
            raise ConfigError(f"grid.{key}: entries must be names or integers (got {grid[key]!r})")
        repeated = sorted({str(v) for v in grid[key] if grid[key].count(v) > 1})
        if repeated:
            raise ConfigError(f"grid.{key}: {', '.join(repeated)} listed more than once (each cell runs once)")
    for s in grid["strategies"]:
        if s not in strategies:
            raise ConfigError(f"grid.strategies: unknown strategy {s!r}; known: {', '.join(strategies)}")
    for g in grid["growth"]:
        if g not in FIXED:
            try:
                growth_methods(g)
            except ConfigError as err:
                raise ConfigError(f"grid.growth: {err}") from None
    for s in grid["seeds"]:
        if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s <= MAX_SEED:
            raise ConfigError(f"grid.seeds: seeds must be integers in [0, {MAX_SEED}] (got {s!r})")
    for name in grid["plasticity"]:
        if name != "none" and name not in resetters:
            raise ConfigError(
                f"grid.plasticity: unknown plasticity method {name!r}; known: none, {', '.join(resetters)}"
            )
    for name in grid["prune"]:
        if name not in PRUNE_CHOICES:
            raise ConfigError(f"grid.prune: unknown prune method {name!r}; known: {', '.join(PRUNE_CHOICES)}")
    plasticity_kwargs = data.get("plasticity", {})
    for name in plasticity_kwargs:
        if name not in resetters:
            raise ConfigError(f"plasticity.{name}: unknown plasticity method; known: {', '.join(resetters)}")
        check_plasticity(name, plasticity_kwargs[name], where=f"plasticity.{name}")
    strategy_kwargs = data.get("strategy", {})
    for name in strategy_kwargs:
        if name not in strategies:
            raise ConfigError(f"strategy.{name}: unknown strategy; known: {', '.join(strategies)}")
        check_strategy_kwargs(name, strategy_kwargs[name], where=f"strategy.{name}")
    # the growth axis sets each cell's method: the shared settings are checked against each in cells()
    base = RunConfig.from_dict({**run, "growth": "none"}, where="run", methods=False)
    match = grid.get("match_growth", "swe-svod")
    try:
        match_method = growth_methods(match)
    except ConfigError as err:
        raise ConfigError(f"grid.match_growth: {err}") from None
    if match_method is None:
        raise ConfigError("grid.match_growth: must name a growth method, not 'none'")
    # what imports torch last (the device, Avalanche's own checks), so that every other mistake answers at once
    base.check_methods()
    for key, names in (
        ("grid.growth", [g for g in grid["growth"] if g not in FIXED]),
        ("grid.match_growth", [match]),
    ):
        for g in names:
            try:
                parse_growth(g)
            except GrowthError as err:
                raise ConfigError(f"{key}: {err}") from None
    out = GridConfig(
        base,
        list(grid["strategies"]),
        list(grid["growth"]),
        list(grid["seeds"]),
        strategy_kwargs,
        match,
        list(grid["plasticity"]),
        plasticity_kwargs,
        list(grid["prune"]),
        grid.get("baseline"),
    )
    out.check_baseline()
    if not out.cells():
        raise ConfigError(
            f"{path}: the grid's axes leave no cell to run (strategies {out.strategies}, growth "
            f"{out.growth}, plasticity {out.plasticity}, prune {out.prune}: reference strategies run with "
            "growth, plasticity and prune 'none' only)"
        )
    return out
