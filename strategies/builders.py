"""Named strategy builders and growth presets, so an experiment is a table of names."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from avalanche.models import PNN
from avalanche.training import AGEM, DER, ER_ACE, EWC, GEM, MAS, MIR, LwF
from avalanche.training.supervised import Cumulative, JointTraining, Naive, PNNStrategy, Replay
from avalanche.training.templates import SupervisedTemplate
from torch import nn

from clgrow import ConfigError, GrowthError
from clgrow.methods.plasticity import PlasticityMethod
from clgrow.registry import strategies
from clgrow.strategies.checkpointing import make_optimizers_checkpointable
from clgrow.strategies.declared import OPTIMIZERS, reference_strategies, traits
from clgrow.strategies.evaluation import LeanDispatch
from clgrow.strategies.fastdata import BatchDataPlugin
from clgrow.strategies.optimizer_state import ResetOptimizerPlugin
from clgrow.strategies.plasticity import PlasticityPlugin
from clgrow.strategies.plugin import GrowPlugin
from clgrow.strategies.prune_plugin import PrunePlugin
from clgrow.strategies.regularisers import GrowingLFLPlugin, SIPlugin, TaskSafeRWalkPlugin
from clgrow.strategies.schedule import GROWTH_PRESETS, TRAINING, GrowthConfig, parse_growth

__all__ = [
    "GROWTH_PRESETS",
    "OPTIMIZERS",
    "STRATEGIES",
    "parse_growth",
    "build_optimizer",
    "build_strategy",
    "make_grow_plugin",
    "reference_strategies",
]

#: Name -> builder of every strategy (built-in, installed packages', registered): the registry.
STRATEGIES = strategies


def build_optimizer(
    name: str, model: nn.Module, lr: float = 1e-3, *, momentum: float | None = None, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """A named optimizer over the model's parameters.

    Parameters
    ----------
    name : str
        ``adam``, ``adamw`` (decoupled weight decay) or ``sgd``.
    momentum : float, optional
        SGD only (default 0.9).
    weight_decay : float
        Frozen weights (``requires_grad=False``, e.g. while SWE couples or LFL's frozen head)
        have no gradient, and torch optimizers skip parameters without one: decay never reaches them.
    """
    if momentum is not None and name != "sgd":
        raise GrowthError(f"momentum applies to the sgd optimizer only, not {name!r} (got momentum={momentum!r})")
    params = model.parameters()
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9 if momentum is None else momentum, weight_decay=weight_decay)
    raise GrowthError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")


def make_grow_plugin(growth: str | GrowthConfig | None, **settings: Any) -> GrowPlugin | None:
    """A GrowPlugin for a growth preset, ``EXTENDER+DISTRIBUTOR`` or config (``None`` for ``"none"``).

    ``settings`` are :class:`~clgrow.strategies.GrowthConfig` fields (keyword-argument tables are merged
    into the preset's).
    """
    cfg = parse_growth(growth, **settings)
    return None if cfg is None else GrowPlugin(cfg)


def _naive(**kw: Any) -> SupervisedTemplate:
    return Naive(**kw)


def _replay(*, mem_size: int, **kw: Any) -> SupervisedTemplate:
    return Replay(mem_size=mem_size, **kw)


def _ewc(*, ewc_lambda: float, mode: str, decay_factor: float | None, **kw: Any) -> SupervisedTemplate:
    return EWC(ewc_lambda=ewc_lambda, mode=mode, decay_factor=decay_factor, **kw)


def _with_plugin(plugin: Any, kw: dict[str, Any]) -> SupervisedTemplate:
    kw["plugins"] = [*kw.get("plugins", []), plugin]
    return Naive(**kw)


def _si(*, si_lambda: float, eps: float, **kw: Any) -> SupervisedTemplate:
    # Avalanche's SynapticIntelligence strategy is Naive plus its plugin; ours carries the CPU fix.
    return _with_plugin(SIPlugin(si_lambda=si_lambda, eps=eps), kw)


def _mas(*, lambda_reg: float, alpha: float, **kw: Any) -> SupervisedTemplate:
    return MAS(lambda_reg=lambda_reg, alpha=alpha, **kw)


def _rwalk(*, ewc_lambda: float, ewc_alpha: float, delta_t: int, **kw: Any) -> SupervisedTemplate:
    # Avalanche ships RWalk as a plugin only; the usual strategy is Naive with it.
    return _with_plugin(TaskSafeRWalkPlugin(ewc_lambda=ewc_lambda, ewc_alpha=ewc_alpha, delta_t=delta_t), kw)


def _lfl(*, lambda_e: float, **kw: Any) -> SupervisedTemplate:
    return _with_plugin(GrowingLFLPlugin(lambda_e), kw)


def _lwf(*, alpha: float, temperature: float, **kw: Any) -> SupervisedTemplate:
    return LwF(alpha=alpha, temperature=temperature, **kw)


def _agem(*, patterns_per_exp: int, sample_size: int, **kw: Any) -> SupervisedTemplate:
    return AGEM(patterns_per_exp=patterns_per_exp, sample_size=sample_size, **kw)


def _gem(*, patterns_per_exp: int, memory_strength: float, **kw: Any) -> SupervisedTemplate:
    return GEM(patterns_per_exp=patterns_per_exp, memory_strength=memory_strength, **kw)


def _cumulative(**kw: Any) -> SupervisedTemplate:
    return Cumulative(**kw)


def _der(*, mem_size: int, batch_size_mem: int | None, alpha: float, beta: float, **kw: Any) -> SupervisedTemplate:
    return DER(mem_size=mem_size, batch_size_mem=batch_size_mem, alpha=alpha, beta=beta, **kw)


def _er_ace(*, mem_size: int, batch_size_mem: int, **kw: Any) -> SupervisedTemplate:
    return ER_ACE(mem_size=mem_size, batch_size_mem=batch_size_mem, **kw)


def _joint(**kw: Any) -> SupervisedTemplate:
    return JointTraining(**kw)


def _pnn(**kw: Any) -> SupervisedTemplate:
    return PNNStrategy(**kw)


def _mir(*, mem_size: int, subsample: int, batch_size_mem: int, **kw: Any) -> SupervisedTemplate:
    return MIR(mem_size=mem_size, subsample=subsample, batch_size_mem=batch_size_mem, **kw)


#: Where the caller's plugins stand, in the order given: after the data and optimizer plugins,
#: before pruning, resets and growth (clgrow's plugins declare their ``plugin_order``).
USER_PLUGIN_ORDER = 20


def ordered_plugins(ours: Sequence[Any], theirs: Sequence[Any]) -> list[Any]:
    """The strategy's plugins in the order they must run: clgrow's by their declared
    ``plugin_order`` around the caller's, which keep their order. Ours that come after the
    caller's go before the first of the caller's that declares a later order (a GrowPlugin passed
    in ``plugins``: resets before it), else at the end."""
    ranked = sorted(ours, key=lambda p: p.plugin_order)
    out = [p for p in ranked if p.plugin_order < USER_PLUGIN_ORDER] + list(theirs)
    start = len(out) - len(theirs)
    for p in (p for p in ranked if p.plugin_order >= USER_PLUGIN_ORDER):
        later = (i for i in range(start, len(out)) if getattr(out[i], "plugin_order", -1) > p.plugin_order)
        out.insert(next(later, len(out)), p)
    return out


def build_strategy(
    name: str,
    model: nn.Module,
    growth: str | GrowthConfig | None = "swe-svod",
    *,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = TRAINING.lr,
    criterion: nn.Module | None = None,
    train_mb_size: int = TRAINING.train_mb_size,
    train_epochs: int = TRAINING.train_epochs,
    eval_mb_size: int = TRAINING.eval_mb_size,
    device: str | torch.device = "cpu",
    evaluator: Any = None,
    plugins: Sequence[Any] | None = None,
    fast_data: bool = True,
    plasticity: str | PlasticityMethod = "none",
    plasticity_kwargs: dict[str, Any] | None = None,
    prune: str = "none",
    prune_select: str = "dead",
    prune_tau: float = 0.025,
    reset_optimizer: bool = True,
    **hyperparameters: Any,
) -> SupervisedTemplate:
    """Build a named Avalanche strategy with growth.

    Parameters
    ----------
    name : str
        One of ``STRATEGIES``: ``naive``, ``replay``, ``ewc``, ``si`` (with the CPU fix of
        :class:`SIPlugin`), ``lwf``, ``agem``, ``gem``, ``cumulative``, ``mas``, ``rwalk``,
        ``lfl`` (growth-aware, :class:`GrowingLFLPlugin`), ``der``, ``er-ace``, ``mir``; and the
        reference strategies ``joint`` and ``pnn``, which take growth ``none`` only (``pnn``
        with a :class:`avalanche.models.PNN`).
    model : nn.Module
        Any module with growth sites when ``growth`` is not ``"none"``.
    growth : str or GrowthConfig or None
        A preset of ``GROWTH_PRESETS``, ``EXTENDER+DISTRIBUTOR`` or a full config.
    optimizer : Optimizer, optional
        Default: Adam over the model's parameters with learning rate ``lr``.
    fast_data : bool
        Attach :class:`~clgrow.strategies.fastdata.BatchDataPlugin` (first, so growth reads its
        loader too): the same batches as Avalanche's loaders, gathered from tensors wherever
        that is exact. ``False`` keeps Avalanche's per-sample path everywhere.
    plasticity : str or PlasticityMethod
        ``"none"``, ``"redo"`` or ``"cbp"`` (or an instance): a :class:`PlasticityPlugin`,
        attached before the GrowPlugin so an experience's resets come before its growth.
    plasticity_kwargs : dict, optional
        Arguments of the named plasticity method (``tau``, ``every``, ``replacement_rate``...).
    prune, prune_select, prune_tau : str, str, float
        Prune at each experience from the second on, before resets and growth: ``none``, ``drop``
        or ``swe``; which units (``dead`` or ``dormant`` at ``prune_tau``); see :class:`PrunePlugin`.
    reset_optimizer : bool
        Restart the optimizer's state at every experience (:class:`ResetOptimizerPlugin`), whether
        or not the model grows; ``False`` keeps Avalanche's carried state.
    **hyperparameters
        :class:`~clgrow.strategies.GrowthConfig` fields (``neurons_per_experience``, ``extender_kwargs``,
        ...) and the strategy's own (``mem_size``, ``ewc_lambda``, ``si_lambda``,
        ``alpha``, ``temperature``, ``patterns_per_exp``, ``memory_strength``, ...).
    """
    if name not in STRATEGIES:
        raise GrowthError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
    declared = STRATEGIES.params(name)
    trait = traits(name)
    if trait.reference and parse_growth(growth) is not None:
        raise GrowthError(f"strategy {name!r} is a reference without growth: use growth 'none' (got {growth!r})")
    if trait.own_model and not isinstance(model, PNN):
        raise GrowthError(
            f"strategy {name!r} needs Avalanche's PNN model (avalanche.models.PNN), got {type(model).__name__}"
        )
    if trait.task_labels is False and getattr(model, "heads_per_task", False):
        raise GrowthError(
            f"strategy {name!r} is class-incremental: {trait.task_labels_why}; drop task labels or use another strategy"
        )
    make_optimizers_checkpointable()  # so Avalanche's checkpoints can pickle the optimizer
    grow_kwargs = {k: hyperparameters.pop(k) for k in GrowthConfig.field_names() if k in hyperparameters}
    plugin = make_grow_plugin(growth, **grow_kwargs)
    if plugin is not None:
        GrowPlugin.check_model(model)
        if trait.stores_logits and plugin.config.grow_head:
            raise GrowthError(
                f"strategy {name!r} replays stored logits of the head's width at storage time; with "
                "grow_head the head widens and they no longer match: give the model every class "
                "from the start (grow_head off)"
            )
    ours: list[Any] = [LeanDispatch(), *([BatchDataPlugin()] if fast_data else [])]
    if isinstance(plasticity, PlasticityMethod) or plasticity != "none":
        if trait.reference:
            raise GrowthError(f"strategy {name!r} is a reference without growth or resets: use plasticity 'none'")
        resets = PlasticityPlugin(plasticity, **(plasticity_kwargs or {}))
        resets.check_model(model)
        ours.append(resets)
    elif plasticity_kwargs:
        raise GrowthError(f"plasticity_kwargs {sorted(plasticity_kwargs)} given, but plasticity is 'none'")
    if not isinstance(reset_optimizer, bool):
        raise GrowthError(f"reset_optimizer must be True or False, got {reset_optimizer!r}")
    if reset_optimizer:
        ours.append(ResetOptimizerPlugin())
    if prune != "none":
        if trait.reference:
            raise GrowthError(f"strategy {name!r} is a reference without growth or pruning: use prune 'none'")
        ours.append(PrunePlugin(prune_select, method=prune, tau=prune_tau))
    if plugin is not None:
        ours.append(plugin)
    all_plugins = ordered_plugins(ours, plugins or [])
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    common = dict(
        model=model,
        optimizer=optimizer,
        criterion=criterion if criterion is not None else nn.CrossEntropyLoss(),
        train_mb_size=train_mb_size,
        train_epochs=train_epochs,
        eval_mb_size=eval_mb_size,
        device=device,
        plugins=all_plugins,
    )
    if evaluator is not None:
        common["evaluator"] = evaluator
    try:
        checked = declared.build(hyperparameters)
    except ConfigError as err:
        raise ConfigError(f"strategy_kwargs: {err}") from None
    return STRATEGIES[name](**common, **checked)


def check_hyperparameters(name: str, hyperparameters: dict[str, Any]) -> None:
    """Refuse hyperparameters the strategy would refuse when built (a name Avalanche's class does
    not take, a value its constructor rejects), by building it once on a one-unit model.

    Raises
    ------
    GrowthError
        Naming the strategy and what it refused.
    """
    if not hyperparameters:
        return
    from avalanche.training.plugins import EvaluationPlugin

    if traits(name).own_model:
        model: nn.Module = PNN(num_layers=1, in_features=1, hidden_features_per_column=1)
    else:
        from clgrow.models import mlp

        model = mlp(1, [1], 2)
    kwargs = {k: v for k, v in hyperparameters.items() if k not in GrowthConfig.field_names()}
    try:
        with warnings.catch_warnings():  # a probe, not a run: Avalanche's "no loggers" warning misleads
            warnings.filterwarnings("ignore", message="No loggers specified")
            build_strategy(name, model, "none", evaluator=EvaluationPlugin(loggers=[]), fast_data=False, **kwargs)
    except GrowthError:
        raise
    except (ValueError, AssertionError) as err:  # Avalanche's own checks of a value
        raise GrowthError(f"strategy {name!r}: {err}") from None
