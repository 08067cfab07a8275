"""A run's settings, declared once (:class:`RunConfig`), and the plan one resolves into (:class:`RunPlan`).

Every field is a :func:`~clgrow.strategies.settings.setting`: its section, what it takes, its
default, its ``clgrow run`` flag, its help and when it applies. The command line's flags, a grid
file's ``[run]`` table, ``summary.json`` and the flag reference in docs/cli.md are made from these
declarations; the rules between fields sit, by section, in :mod:`clgrow.experiments.rules`.

:meth:`RunConfig.resolve` validates once and returns a frozen :class:`RunPlan` holding the built
methods; the runner and ``build_strategy`` take the plan and parse no name again. ``clgrow run
--check`` is that same resolve.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import itertools
from dataclasses import dataclass
from typing import Any

from clgrow.errors import ConfigError
from clgrow.experiments.capacity import MODELS
from clgrow.experiments.catalog import BENCHMARK_NAMES
from clgrow.experiments.loggers import LOGGERS
from clgrow.experiments.rules import FIXED, FIXED_COMPUTE, FIXED_FINAL, FIXED_SPLIT, check
from clgrow.methods import MAX_LR, PRUNE_METHODS, STREAM_PRUNE_SELECTORS
from clgrow.registry import plasticity_methods, strategies
from clgrow.strategies.declared import OPTIMIZERS
from clgrow.strategies.schedule import TRAINING, GrowthConfig, growth_from_method, growth_methods
from clgrow.strategies.settings import (
    custom,
    flag,
    names,
    number,
    one_of,
    setting,
    settings_of,
    table,
    text,
    whole,
    whole_list,
)

__all__ = [
    "RunConfig",
    "RunPlan",
    "FIXED_FINAL",
    "FIXED_COMPUTE",
    "FIXED_SPLIT",
    "FIXED",
    "MODELS",
    "MAX_SEED",
    "PRUNE_CHOICES",
    "PRUNE_SELECT",
]

MAX_SEED = 2**32 - 1  # numpy's seeds stop there
#: ``prune``: no pruning, or how units leave.
PRUNE_CHOICES = ("none", *PRUNE_METHODS)
#: ``prune_select``: which units leave.
PRUNE_SELECT = STREAM_PRUNE_SELECTORS


def _channels_ok(v: Any) -> bool:
    """``[16, "M", 32, "M"]``: widths >= 1, the first a width, each optionally followed by one ``M``."""
    whole_ = [isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in v] if isinstance(v, list) else []
    return (
        bool(whole_)
        and whole_[0]
        and all(ok or c == "M" for ok, c in zip(whole_, v))
        and not any(a == b == "M" for a, b in itertools.pairwise(v))
    )


def _channel(word: str) -> int | str:
    """One ``--channels`` word: a width or ``M``."""
    if word.upper() == "M":
        return "M"
    try:
        return int(word)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a channel width or M, got {word!r}") from None


# when a setting applies (None) or why it does not
def _model_is(*kinds: str) -> Any:
    def applies(c: RunConfig) -> str | None:
        return (
            None if c.model in kinds else f"it shapes model {' or '.join(map(repr, kinds))}, and model is {c.model!r}"
        )

    applies.__doc__ = f"model {' or '.join(kinds)}"
    return applies


def _external(c: RunConfig) -> str | None:
    """a model by Avalanche name or import path"""
    return None if c.model not in MODELS else f"it is an argument of a model named by import path, not of {c.model!r}"


def _pruning(c: RunConfig) -> str | None:
    """prune drop or swe"""
    return None if c.prune != "none" else "prune is 'none' (nothing is pruned)"


def _dormant_selector(c: RunConfig) -> str | None:
    """prune_select dormant"""
    if c.prune == "none":
        return _pruning(c)
    return None if c.prune_select == "dormant" else f"prune_select is {c.prune_select!r}, which uses no threshold"


def _sgd(c: RunConfig) -> str | None:
    """optimizer sgd"""
    return None if c.optimizer == "sgd" else f"it applies to optimizer 'sgd' only (optimizer is {c.optimizer!r})"


def _matched(c: RunConfig) -> str | None:
    """match_final_size"""
    return (
        None
        if c.match_final_size is not None
        else "it applies to a fixed model matched to a growth run (match_final_size)"
    )


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs; the defaults make a small, quick run (frozen: change with
    :func:`dataclasses.replace`)."""

    # data
    imports: list[str] = setting(
        "data",
        names(what="a list of module names"),
        [],
        "modules imported first (their methods register)",
        flag=None,
        via="`--import MODULE` (before the command)",
    )
    benchmark: str = setting("data", one_of(lambda: BENCHMARK_NAMES), "split-mnist-5k", "the stream")
    n_experiences: int = setting("data", whole(), 5, "experiences in the stream", flag="--experiences")
    class_order_seed: int = setting("data", whole(0, MAX_SEED), 0, "seed of the classes' order")
    task_labels: bool = setting("data", flag(), False, "task-incremental: task labels and one head per task")
    data_root: str | None = setting(
        "data", text(optional=True, what="a path (a non-empty string)"), None, "directory holding on-disk data sets"
    )
    # strategy
    strategy: str = setting("strategy", one_of(lambda: tuple(strategies)), "naive", "the CL strategy")
    strategy_kwargs: dict[str, Any] = setting(
        "strategy",
        table(),
        {},
        "the strategy's hyperparameters (clgrow list --verbose)",
        flag=None,
        via="`--set KEY=VALUE` (JSON values); `[strategy.NAME]` in a grid",
    )
    # model
    model: str = setting(
        "model",
        text(),
        "mlp",
        "mlp, cnn (--channels) or resnet (ResNet-18, --nf), built by clgrow; Avalanche's SimpleMLP, SimpleCNN, "
        "SlimResNet18 (MT... for task labels); or your own as package.module:factory",
    )
    model_args: dict[str, Any] = setting(
        "model",
        table(),
        {},
        "keyword arguments of a model named by Avalanche name or import path",
        flag=None,
        via="`--model-arg KEY=VALUE` (JSON values)",
        applies=_external,
    )
    hidden_sizes: list[int] = setting(
        "model",
        whole_list(),
        [64, 64],
        "hidden widths of the MLP, or of the linear layers after a CNN's convolutions",
        flag="--hidden",
        applies=_model_is("mlp", "cnn"),
    )
    channels: list[int | str] = setting(
        "model",
        custom(
            _channels_ok,
            "convolution widths >= 1, each optionally followed by one 'M' (a max-pool)",
            parse=_channel,
            nargs="+",
            metavar="C|M",
        ),
        [16, "M", 32, "M"],
        "the CNN's convolution widths, M after one for a 2x2 max-pool",
        applies=_model_is("cnn"),
    )
    batch_norm: bool = setting("model", flag(), True, "batch norm after each convolution", applies=_model_is("cnn"))
    nf: int = setting("model", whole(), 20, "the ResNet's first width (SlimResNet18's)", applies=_model_is("resnet"))
    init_from: str | None = setting(
        "model",
        text(optional=True, what="a path (a non-empty string)"),
        None,
        "start from a grown model a run saved (its model.pt): loaded into the model built here, at its widths",
    )
    # training
    optimizer: str = setting("training", one_of(lambda: OPTIMIZERS), "adam", "the optimizer")
    lr: float = setting("training", number(gt=0, le=MAX_LR), TRAINING.lr, "learning rate")
    momentum: float | None = setting(
        "training", number(ge=0, lt=1, optional=True), None, "SGD momentum (absent: 0.9)", applies=_sgd
    )
    weight_decay: float = setting("training", number(ge=0), 0.0, "the optimizer's weight decay")
    train_epochs: int = setting("training", whole(), TRAINING.train_epochs, "epochs per experience", flag="--epochs")
    train_mb_size: int = setting("training", whole(), TRAINING.train_mb_size, "training batch", flag="--batch-size")
    eval_mb_size: int = setting(
        "training", whole(), TRAINING.eval_mb_size, "evaluation batch", flag="--eval-batch-size"
    )
    reset_optimizer: bool = setting(
        "training",
        flag(),
        True,
        "restart the optimizer's state at every experience, grown or fixed model alike (off: carried, as in Avalanche)",
    )
    device: str = setting("training", text(), "auto", "auto, cpu, cuda, cuda:i or mps")
    seed: int = setting("training", whole(0, MAX_SEED), 0, "fixes everything on CPU")
    threads: int | None = setting("training", whole(optional=True), None, "CPU threads of the run (absent: torch's)")
    # growth
    growth: str = setting("growth", text(), "swe-svod", "a preset (clgrow list) or EXTENDER+DISTRIBUTOR, or none")
    grow: GrowthConfig = dataclasses.field(default_factory=GrowthConfig)
    match_final_size: str | None = setting(
        "growth",
        text(optional=True),
        None,
        "train a fixed model at the final widths this growth reaches",
        flag=None,
        via="`--match-final-size` (with --growth naming the growth)",
    )
    match_compute: bool = setting(
        "growth",
        flag(),
        False,
        "with match_final_size: train for the multiply-adds the growth run spent",
        flag=None,
        via="`--match-final-compute`",
        applies=_matched,
    )
    match_split: bool = setting(
        "growth",
        flag(),
        False,
        "with match_final_size: split the units among experiences as the growth run grew them, each "
        "experience training its own (the growth run's isolation, without growth)",
        flag=None,
        via="a grid's `fixed-split` entry",
        applies=_matched,
    )
    # pruning
    prune: str = setting(
        "pruning",
        one_of(lambda: PRUNE_CHOICES),
        "none",
        "remove hidden units at each new experience, before growth: drop them, or swe (their contribution moved first)",
    )
    prune_select: str = setting(
        "pruning",
        one_of(lambda: PRUNE_SELECT),
        "dead",
        "which units a prune removes: dead, or tau-dormant",
        applies=_pruning,
    )
    prune_tau: float = setting(
        "pruning", number(ge=0), 0.025, "dormancy threshold of prune_select dormant", applies=_dormant_selector
    )
    # plasticity
    plasticity: str = setting(
        "plasticity",
        one_of(lambda: ("none", *plasticity_methods)),
        "none",
        "resets next to growth (ReDo, continual backprop)",
    )
    plasticity_kwargs: dict[str, Any] = setting(
        "plasticity",
        table(),
        {},
        "arguments of the plasticity method",
        flag=None,
        via="`--METHOD-ARG VALUE` flags; `[plasticity.NAME]` in a grid",
    )
    # output
    tau: float = setting("output", number(ge=0), 0.025, "τ of the τ-dormant units the metrics count")
    loggers: list[str] = setting(
        "output",
        names(what=f"a list of logger names from {', '.join(LOGGERS)}"),
        ["csv"],
        "where metrics go besides metrics.csv (always written)",
        flag=None,
        via="`--logger NAME` (repeatable)",
    )

    def __post_init__(self) -> None:
        if isinstance(self.grow, dict):  # plain data from TOML or summary.json
            object.__setattr__(self, "grow", GrowthConfig.from_dict(self.grow, where="grow"))

    # ----------------------------------------------------------------------------------------
    @property
    def grows(self) -> bool:
        """Whether this run itself grows (a fixed model matched to a growth run does not)."""
        return self.growth != "none" and self.match_final_size is None

    @property
    def growth_label(self) -> str:
        """Name of the growth setting for tables (``fixed-final`` for matched fixed models)."""
        if self.match_final_size:
            return FIXED_COMPUTE if self.match_compute else FIXED_SPLIT if self.match_split else FIXED_FINAL
        return self.growth

    @functools.cached_property
    def method(self) -> dict[str, Any] | None:
        """The fields ``growth`` names (extender, distributor and their arguments; ``None`` for
        ``none``), looked up once per configuration (``ConfigError`` for an unknown name)."""
        return growth_methods(self.growth)

    def growth_config(self) -> GrowthConfig | None:
        """The growth method of ``growth`` with this run's settings from ``grow`` (None: no growth);
        checked once per configuration (``GrowthError`` naming a refused argument)."""
        return self._growth_config if self.grows else None

    @functools.cached_property
    def _growth_config(self) -> GrowthConfig | None:
        return growth_from_method(self.method, base=self.grow)

    def site_sizes(self) -> list[int]:
        """Initial width of every growth site of the model, in site order (an MLP's hidden layers; a
        CNN's convolutions, then its linear layers; a ResNet's stage by stage: the first stage's
        stream and its blocks' inner channels, then in each later stage its first block's inner
        channels, its stream, the other blocks')."""
        if self.model == "cnn":
            return [c for c in self.channels if isinstance(c, int)] + list(self.hidden_sizes)
        if self.model == "resnet":
            return [self.nf * 2**s for s in range(4) for _ in range(3)]
        if self.model not in MODELS:  # traced when the methods are checked
            return []
        return list(self.hidden_sizes)

    def growth_steps(self) -> int:
        """Growth steps the run takes at most: one at each experience from ``grow_from_experience``,
        and one every ``grow_every_epochs`` epochs inside every experience."""
        g = self.grow
        at_start = max(0, self.n_experiences - g.grow_from_experience)
        every = g.grow_every_epochs
        staged = (self.train_epochs - 1) // every if every else 0
        return at_start + self.n_experiences * staged

    # ----------------------------------------------------------------------------------------
    def validate(self, methods: bool = True, applicable: bool = True) -> RunConfig:
        """Raise ``ConfigError`` naming the first invalid field; return ``self``.

        ``methods=False`` leaves out the checks that import torch (the device, Avalanche's own
        checks of the strategy's hyperparameters, models traced); ``applicable=False`` accepts
        settings this run ignores (a grid's shared settings, checked against its cells).
        """
        check(self, methods=methods, applicable=applicable)
        return self

    def resolve(self, applicable: bool = True) -> RunPlan:
        """Validate once and build what the run uses: the growth method's extender and distributor,
        the plasticity method and the strategy's hyperparameters (imports torch). ``applicable``:
        as in :meth:`validate` (a grid's cell passes ``False``)."""
        check(self, methods=True, applicable=applicable)
        growth = self.growth_config()
        if growth is not None:  # built here, once; the plugin takes the instances
            extender, distributor = growth.build()
            growth = dataclasses.replace(
                growth, extender=extender, distributor=distributor, extender_kwargs={}, distributor_kwargs={}
            )
        resetter = (
            None if self.plasticity == "none" else plasticity_methods.build(self.plasticity, self.plasticity_kwargs)
        )
        return RunPlan(self, growth, resetter, strategies.params(self.strategy).build(self.strategy_kwargs))

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], where: str = "run", methods: bool = True, applicable: bool = True
    ) -> RunConfig:
        """Build from a mapping, refusing unknown fields by name (``methods``, ``applicable``: as in
        :meth:`validate`)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        data = dict(data)
        if "grow" in data:
            data["grow"] = GrowthConfig.from_dict(data["grow"], where=f"{where}.grow")
        return cls(**data).validate(methods=methods, applicable=applicable)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON/TOML friendly)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["grow"] = self.grow.to_dict()
        return copy.deepcopy(out)

    @classmethod
    def settings(cls) -> dict[str, Any]:
        """Every declared setting (:class:`~clgrow.strategies.settings.Setting`) by field name."""
        return settings_of(cls)


@dataclass(frozen=True)
class RunPlan:
    """A run configuration validated once and resolved into built objects (:meth:`RunConfig.resolve`).

    Attributes
    ----------
    config : RunConfig
        The settings as given (what ``summary.json`` records).
    growth : GrowthConfig or None
        The growth settings with the extender and distributor built (``None``: no growth).
    resetter : PlasticityMethod or None
        The plasticity method, built (``None``: no resets).
    hyperparameters : Params
        The strategy's hyperparameters, validated by its declaration.
    """

    config: RunConfig
    growth: GrowthConfig | None
    resetter: Any
    hyperparameters: Any
