"""The rules between a run's settings, each on the section that owns it, and the one check that runs them.

:func:`check` is what :meth:`RunConfig.validate` and :meth:`RunConfig.resolve` (hence ``clgrow run
--check`` and the run itself) call: every field against its declaration, then every setting the
run would ignore, then each section's rules in :data:`~clgrow.strategies.settings.SECTIONS`
order, then, last, what imports torch (the device, models traced, Avalanche's own checks), so a
command line with a mistake elsewhere answers without that import. Every refusal is a
``ConfigError`` naming the field to change. Strategies are told apart by their declared traits
(:func:`clgrow.strategies.declared.traits`), never by their names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clgrow.errors import ConfigError, GrowthError
from clgrow.experiments import capacity
from clgrow.experiments.catalog import IMAGE_SHAPES, DataMissingError, check_benchmark, check_data
from clgrow.experiments.imports import import_modules
from clgrow.registry import plasticity_methods, strategies
from clgrow.strategies.declared import traits
from clgrow.strategies.schedule import GrowthConfig, growth_methods
from clgrow.strategies.settings import SECTIONS

if TYPE_CHECKING:
    from clgrow.experiments.config import RunConfig

__all__ = ["check", "rule", "RULES", "inapplicable", "check_strategy_kwargs", "check_plasticity", "check_methods"]

FIXED_FINAL = "fixed-final"
#: A fixed model at the final widths, trained for the multiply-adds the growth spent (grid entry).
FIXED_COMPUTE = "fixed-compute"
#: A fixed model at the final widths whose units are split among experiences as the growth run grew
#: them, each experience training its own (isolation without growth; grid entry).
FIXED_SPLIT = "fixed-split"
#: Growth entries of a grid that are fixed models matched to a growth row (no growth of their own).
FIXED = (FIXED_FINAL, FIXED_COMPUTE, FIXED_SPLIT)

#: Each section's rules, in the order they run.
RULES: dict[str, list[Callable[[RunConfig], None]]] = {s: [] for s in SECTIONS}


def rule(section: str) -> Callable[[Callable[[RunConfig], None]], Callable[[RunConfig], None]]:
    """Decorator: a rule between settings of ``section`` (raises ``ConfigError`` naming a field)."""

    def deco(fn: Callable[[RunConfig], None]) -> Callable[[RunConfig], None]:
        RULES[section].append(fn)
        return fn

    return deco


def _need(cond: bool, cfg: RunConfig, name: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{name}: {msg} (got {getattr(cfg, name)!r})")


def check(cfg: RunConfig, methods: bool = True, applicable: bool = True) -> None:
    """Every check of a run configuration, in order; raise ``ConfigError`` at the first refusal."""
    declared = cfg.settings()
    why = declared["imports"].check(cfg.imports)
    if why:
        raise ConfigError(why)
    import_modules(cfg.imports)  # their methods and strategies register before any name is checked
    for name, s in declared.items():
        why = s.check(getattr(cfg, name))
        if why:
            raise ConfigError(why)
    if not isinstance(cfg.grow, GrowthConfig):
        raise ConfigError(f"grow: must be a table of growth settings (got {cfg.grow!r})")
    ignored = inapplicable(cfg) if applicable else []
    for section in SECTIONS:  # a section's own rules first: a bad model name, then what it ignores
        for fn in RULES[section]:
            fn(cfg)
        for name, reason in ignored:
            if _section_of(cfg, name) == section:
                raise ConfigError(f"{name}: does not apply to this run: {reason}; remove it")
    if methods:
        check_methods(cfg)


def _section_of(cfg: RunConfig, name: str) -> str:
    return "growth" if name.startswith("grow.") else cfg.settings()[name].section


def inapplicable(cfg: RunConfig) -> list[tuple[str, str]]:
    """``(setting, why)`` for every setting given a value this run would ignore (a value other
    than its default where its declaration says it does not apply)."""
    out = []
    for name, s in cfg.settings().items():
        if s.applies is None or getattr(cfg, name) == s.default:
            continue
        why = s.applies(cfg)
        if why:
            out.append((name, why))
    if cfg.growth == "none" and cfg.match_final_size is None:
        default = GrowthConfig()
        for name in GrowthConfig.field_names():
            if getattr(cfg.grow, name) != getattr(default, name):
                out.append((f"grow.{name}", "growth is 'none' (nothing grows)"))
    return out


# data ---------------------------------------------------------------------------------------
@rule("data")
def _benchmark(cfg: RunConfig) -> None:
    try:
        check_benchmark(cfg.benchmark, cfg.n_experiences, cfg.task_labels)
    except ValueError as err:
        raise ConfigError(f"benchmark: {err}") from None
    try:  # an on-disk benchmark's files are there (a check of names, nothing is read)
        check_data(cfg.benchmark, cfg.data_root)
    except DataMissingError as err:
        raise ConfigError(f"data_root: {err}") from None


# model --------------------------------------------------------------------------------------
@rule("model")
def _init_from(cfg: RunConfig) -> None:
    if cfg.init_from is None:
        return
    if not Path(cfg.init_from).expanduser().is_file():
        raise ConfigError(
            f"init_from: {cfg.init_from!r} is not a file (give the model.pt a run wrote, or a file of clgrow.save_grown)"
        )
    for name in ("match_final_size", "match_split"):
        _need(
            getattr(cfg, name) in (None, False),
            cfg,
            name,
            "a baseline built at another run's widths cannot start from a saved model (init_from)",
        )
    _need(
        not traits(cfg.strategy).reference,
        cfg,
        "strategy",
        "a reference strategy builds its own model: init_from does not apply",
    )


# strategy -----------------------------------------------------------------------------------
@rule("strategy")
def _traits(cfg: RunConfig) -> None:
    t, name = traits(cfg.strategy), cfg.strategy
    if t.reference:
        why = f"strategy {name!r} is a reference row without growth, resets or pruning"
        _need(cfg.growth == "none" and cfg.match_final_size is None, cfg, "growth", f"{why}: use growth 'none'")
        _need(cfg.plasticity == "none", cfg, "plasticity", f"{why}: use plasticity 'none'")
        _need(cfg.prune == "none", cfg, "prune", f"{why}: use 'none'")
    if t.task_labels is True:
        _need(
            cfg.task_labels,
            cfg,
            "task_labels",
            f"strategy {name!r} needs task labels ({t.task_labels_why}): --task-labels, task_labels = true",
        )
    if t.task_labels is False:
        _need(
            not cfg.task_labels,
            cfg,
            "task_labels",
            f"strategy {name!r} is class-incremental: {t.task_labels_why}; drop --task-labels or use another strategy",
        )
    if t.own_model:
        _need(
            cfg.model == "mlp",
            cfg,
            "model",
            f"strategy {name!r} builds {t.own_model} from hidden_sizes; use model 'mlp'",
        )
    if t.one_width:
        _need(
            len(set(cfg.hidden_sizes)) == 1,
            cfg,
            "hidden_sizes",
            f"strategy {name!r} builds columns of one width: give equal hidden sizes",
        )
    if t.stores_logits and cfg.grows:
        _need(
            not cfg.grow.grow_head,
            cfg,
            "grow",
            f"strategy {name!r} replays stored logits of the head's width at storage time: grow_head must be off",
        )
    check_strategy_kwargs(cfg.strategy, cfg.strategy_kwargs, [f.name for f in dataclasses.fields(cfg)])


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


def check_strategy_kwargs(
    strategy: str, kwargs: dict[str, Any], run_fields: list[str], where: str = "strategy_kwargs"
) -> None:
    """Refuse hyperparameters that clash with the run's fields (``run_fields``) or growth settings,
    or that the strategy's declaration refuses (unknown names, types, ranges), without importing
    Avalanche."""
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{where}: must be a table of hyperparameters (got {kwargs!r})")
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


# model --------------------------------------------------------------------------------------
@rule("model")
def _model(cfg: RunConfig) -> None:
    from clgrow.experiments.models import check_model_name

    if cfg.model not in capacity.MODELS:
        why = check_model_name(cfg.model)
        _need(why is None, cfg, "model", why or "")
        _need(
            cfg.match_final_size is None,
            cfg,
            "match_final_size",
            f"a fixed model at the grown widths is built by clgrow; {cfg.model!r} is not (compare with 'none')",
        )
        return
    if cfg.model == "mlp":
        return
    _need(
        cfg.benchmark in IMAGE_SHAPES,
        cfg,
        "benchmark",
        f"model {cfg.model!r} reads images; {cfg.benchmark!r} has none (use one of {', '.join(IMAGE_SHAPES)})",
    )
    if cfg.model == "cnn":
        _, h, w = IMAGE_SHAPES[cfg.benchmark]
        pools = cfg.channels.count("M")
        _need(
            h >> pools >= 1 and w >> pools >= 1,
            cfg,
            "channels",
            f"{pools} max-pools shrink a {h}x{w} image of {cfg.benchmark} to nothing",
        )


# growth -------------------------------------------------------------------------------------
@rule("growth")
def _growth(cfg: RunConfig) -> None:
    if cfg.growth in FIXED:  # alone it has no reference run: it would train the initial widths under that label
        raise ConfigError(
            f"growth: {cfg.growth} is a grid entry; for one run use --growth METHOD --match-final-size "
            "(or --match-final-compute)"
        )
    try:
        method = cfg.method
    except ConfigError as err:
        raise ConfigError(f"growth: {err}") from None
    if cfg.match_final_size is not None:
        try:
            _need(
                growth_methods(cfg.match_final_size) is not None, cfg, "match_final_size", "must name a growth method"
            )
        except ConfigError as err:
            raise ConfigError(f"match_final_size: {err}") from None
    default = GrowthConfig()
    for name in ("extender", "distributor"):
        if getattr(cfg.grow, name) != getattr(default, name):
            raise ConfigError(
                f"grow.{name}: the growth method is set by growth (a preset or "
                f"'EXTENDER+DISTRIBUTOR'), not here (got {getattr(cfg.grow, name)!r})"
            )
    cfg.grow.validate(prefix="grow.", methods=False)
    _need(
        not callable(cfg.grow.neurons_per_experience),
        cfg,
        "grow",
        "neurons_per_experience must be an integer in a run configuration",
    )
    if cfg.grows:
        _schedule(cfg)
        _layers(cfg, method)
    try:  # the methods' arguments, by their declarations (nothing is built)
        cfg.growth_config()
    except GrowthError as err:
        raise ConfigError(f"grow: {err}") from None
    capacity.check_memory(cfg)


def _schedule(cfg: RunConfig) -> None:
    g, steps = cfg.grow, cfg.growth_steps()
    if steps == 0:
        raise ConfigError(
            f"grow.grow_from_experience: growth {cfg.growth!r} would never grow: the first growth experience "
            f"({g.grow_from_experience}) is past the stream's last ({cfg.n_experiences - 1})"
            + (
                f" and grow_every_epochs={g.grow_every_epochs} is not below {cfg.train_epochs} epoch(s)"
                if g.grow_every_epochs
                else ""
            )
            + "; use growth 'none' or an earlier grow_from_experience"
        )
    k = g.neurons_per_experience
    regrows = g.regrow_pruned and cfg.prune != "none"
    if not any(k if isinstance(k, list) else [k]) and not regrows:
        raise ConfigError(
            f"grow.neurons_per_experience: {k!r} adds no unit at any growth step: nothing would grow; use "
            "growth 'none' (or regrow_pruned with pruning to grow back only what is pruned)"
        )
    if g.regrow_pruned and cfg.prune == "none":
        raise ConfigError(
            "grow.regrow_pruned: does not apply to this run: prune is 'none' (nothing is pruned); remove it"
        )
    if g.grow_head:
        raise ConfigError(
            "grow.grow_head: does not apply to this run: a run builds its model's head with every class of the "
            "stream from the start (a model that adds classes itself, like Avalanche's IncrementalClassifier, "
            "needs no help); remove it (grow_head serves a GrowPlugin on a model given in Python)"
        )
    if not g.carry_optimizer_state and cfg.reset_optimizer and not g.grow_every_epochs:
        raise ConfigError(
            "grow.carry_optimizer_state: does not apply to this run: the optimizer restart at every experience's "
            "start (reset_optimizer) clears the state before each growth step, so nothing is carried either way; "
            "remove it, or keep the state with --no-reset-optimizer"
        )
    if isinstance(k, list) and len(k) != steps:
        raise ConfigError(
            f"grow.neurons_per_experience: {len(k)} counts given, one per growth step, but this run "
            f"takes {steps} growth step(s)"
        )


def _layers(cfg: RunConfig, method: dict[str, Any] | None) -> None:
    sizes = cfg.site_sizes()
    n = len(sizes)
    if not n:
        return  # a model clgrow does not build: its sites are traced (check_methods)
    where = f"hidden_sizes {sizes}" if cfg.model == "mlp" else f"model {cfg.model!r} (layer widths {sizes})"
    layer = cfg.grow.distributor_kwargs.get("layer")
    if method and method.get("distributor") == "fixed" and isinstance(layer, int) and not isinstance(layer, bool):
        if not -n <= layer < n:
            raise ConfigError(
                f"grow.distributor_kwargs.layer: layer {layer} does not exist: {where} has layers 0..{n - 1} (or -{n}..-1)"
            )
    if method and method.get("extender") == "swe":
        capacity.check_dense_coupling(cfg, {**method.get("extender_kwargs", {}), **cfg.grow.extender_kwargs})
    if cfg.grow.layers is not None:
        beyond = [i for i in cfg.grow.layers if i >= n]
        if beyond:
            raise ConfigError(f"grow.layers: layers {beyond} do not exist: {where} has layers 0..{n - 1}")
    cap = cfg.grow.max_hidden_size
    if cap is not None:
        _need(
            cap > min(sizes),
            cfg,
            "grow",
            f"max_hidden_size {cap} leaves no room above the initial widths {sizes}: nothing would grow",
        )


# plasticity ---------------------------------------------------------------------------------
@rule("plasticity")
def _plasticity(cfg: RunConfig) -> None:
    check_plasticity(cfg.plasticity, cfg.plasticity_kwargs)
    isolated = (cfg.grows and cfg.grow.isolates(task_incremental=cfg.task_labels)) or cfg.match_split
    _need(
        cfg.plasticity == "none" or not isolated,
        cfg,
        "plasticity",
        "a reset re-initialises units that isolation keeps as they were (grow.isolation, 'auto' by default, "
        "isolates a task-incremental run; fixed-split): choose one, e.g. --isolation none",
    )


def check_plasticity(name: str, kwargs: dict[str, Any], where: str = "plasticity_kwargs") -> None:
    """Refuse an unknown plasticity method or arguments its declaration refuses (no torch)."""
    if name == "none":
        if kwargs:
            raise ConfigError(f"{where}: {sorted(kwargs)} given, but plasticity is 'none'")
        return
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{where}: must be a table of arguments (got {kwargs!r})")
    try:
        plasticity_methods.params(name).build(kwargs)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


# output -------------------------------------------------------------------------------------
@rule("output")
def _loggers(cfg: RunConfig) -> None:
    from clgrow.experiments.loggers import check_loggers

    check_loggers(cfg.loggers)


# what imports torch, last -------------------------------------------------------------------
def check_methods(cfg: RunConfig) -> None:
    """The checks that build something (a model on the ``meta`` device, the strategy on a one-unit
    model) or probe the device; they import torch, so they come after every other check."""
    from clgrow.experiments.device import resolve_device

    try:
        resolve_device(cfg.device)
    except ValueError as err:
        raise ConfigError(f"device: {err}") from None
    if cfg.model not in capacity.MODELS:
        capacity.check_external_model(cfg)
    elif cfg.model != "mlp":
        capacity.check_conv_memory(cfg)
    if cfg.grows:  # budgets priced on the model as built, at its worst step over the run
        capacity.check_param_budget(cfg)
        capacity.check_svod_copy(cfg, cfg.growth_config())
    if cfg.strategy_kwargs:  # what only Avalanche's class knows it refuses (it is built once, on one unit)
        from clgrow.strategies.builders import check_hyperparameters

        try:
            check_hyperparameters(cfg.strategy, cfg.strategy_kwargs)
        except GrowthError as err:
            raise ConfigError(f"strategy_kwargs: {err}") from None
