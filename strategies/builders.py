"""Named strategy builders and growth presets, so an experiment is a table of names."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from avalanche.training import AGEM, EWC, GEM, LwF, SynapticIntelligence
from avalanche.training.supervised import Cumulative, Naive, Replay
from avalanche.training.templates import SupervisedTemplate
from torch import nn

from clgrow import GROWTH_PRESETS, GrowthConfig, GrowthError, parse_growth
from clgrow.strategies.compat import make_optimizers_checkpointable
from clgrow.strategies.plugin import GrowPlugin

__all__ = ["GROWTH_PRESETS", "STRATEGIES", "parse_growth", "build_strategy", "make_grow_plugin"]


def make_grow_plugin(growth: str | GrowthConfig | None, **settings: Any) -> GrowPlugin | None:
    """A GrowPlugin for a growth preset, ``EXTENDER+DISTRIBUTOR`` or config (``None`` for ``"none"``).

    ``settings`` are :class:`~clgrow.GrowthConfig` fields (keyword-argument tables are merged
    into the preset's).
    """
    cfg = parse_growth(growth, **settings)
    return None if cfg is None else GrowPlugin(cfg)


def _naive(**kw: Any) -> SupervisedTemplate:
    return Naive(**kw)


def _replay(mem_size: int = 500, **kw: Any) -> SupervisedTemplate:
    return Replay(mem_size=mem_size, **kw)


def _ewc(ewc_lambda: float = 100.0, mode: str = "separate", **kw: Any) -> SupervisedTemplate:
    return EWC(ewc_lambda=ewc_lambda, mode=mode, **kw)


def _si(si_lambda: float = 1.0, **kw: Any) -> SupervisedTemplate:
    return SynapticIntelligence(si_lambda=si_lambda, **kw)


def _lwf(alpha: float = 1.0, temperature: float = 2.0, **kw: Any) -> SupervisedTemplate:
    return LwF(alpha=alpha, temperature=temperature, **kw)


def _agem(patterns_per_exp: int = 100, sample_size: int = 64, **kw: Any) -> SupervisedTemplate:
    return AGEM(patterns_per_exp=patterns_per_exp, sample_size=sample_size, **kw)


def _gem(patterns_per_exp: int = 100, memory_strength: float = 0.5, **kw: Any) -> SupervisedTemplate:
    return GEM(patterns_per_exp=patterns_per_exp, memory_strength=memory_strength, **kw)


def _cumulative(**kw: Any) -> SupervisedTemplate:
    return Cumulative(**kw)


STRATEGIES: dict[str, Callable[..., SupervisedTemplate]] = {
    "naive": _naive,
    "replay": _replay,
    "ewc": _ewc,
    "si": _si,
    "lwf": _lwf,
    "agem": _agem,
    "gem": _gem,
    "cumulative": _cumulative,
}

def build_strategy(
    name: str,
    model: nn.Module,
    growth: str | GrowthConfig | None = "swe-svod",
    *,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    criterion: nn.Module | None = None,
    train_mb_size: int = 64,
    train_epochs: int = 1,
    eval_mb_size: int = 256,
    device: str | torch.device = "cpu",
    evaluator: Any = None,
    plugins: Sequence[Any] | None = None,
    **hyperparameters: Any,
) -> SupervisedTemplate:
    """Build a named Avalanche strategy with growth.

    Parameters
    ----------
    name : str
        One of ``STRATEGIES`` (``naive``, ``replay``, ``ewc``, ``si``, ``lwf``, ``agem``,
        ``gem``, ``cumulative``).
    model : nn.Module
        A :class:`~clgrow.GrowableMLP` when ``growth`` is not ``"none"``.
    growth : str or GrowthConfig or None
        A preset of ``GROWTH_PRESETS``, ``EXTENDER+DISTRIBUTOR`` or a full config.
    optimizer : Optimizer, optional
        Default: Adam over the model's parameters with learning rate ``lr``.
    **hyperparameters
        :class:`~clgrow.GrowthConfig` fields (``neurons_per_experience``, ``extender_kwargs``,
        ...) and the strategy's own (``mem_size``, ``ewc_lambda``, ``si_lambda``,
        ``alpha``, ``temperature``, ``patterns_per_exp``, ``memory_strength``, ...).
    """
    if name not in STRATEGIES:
        raise GrowthError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
    make_optimizers_checkpointable()  # so Avalanche's checkpoints can pickle the optimizer
    grow_kwargs = {k: hyperparameters.pop(k) for k in GrowthConfig.field_names() if k in hyperparameters}
    plugin = make_grow_plugin(growth, **grow_kwargs)
    if plugin is not None:
        GrowPlugin.check_model(model)
    all_plugins = list(plugins or [])
    if plugin is not None:
        all_plugins.append(plugin)
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
        return STRATEGIES[name](**common, **hyperparameters)
    except TypeError as err:
        raise GrowthError(f"strategy {name!r}: {err}") from None
