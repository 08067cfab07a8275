"""Avalanche integration: the growth and plasticity plugins, inactivity and growth metrics, strategy builders.

Names resolve on first use: ``clgrow.strategies.declared`` (the strategies' declarations) imports neither
Avalanche nor torch, which is what lets the command line answer before importing them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clgrow._lazy import lazy_attributes

_LAZY = {
    "GROWTH_PRESETS": "clgrow.strategies.schedule",
    "GrowthConfig": "clgrow.strategies.schedule",
    "OPTIMIZERS": "clgrow.strategies.builders",
    "STRATEGIES": "clgrow.strategies.builders",
    "build_optimizer": "clgrow.strategies.builders",
    "build_strategy": "clgrow.strategies.builders",
    "make_grow_plugin": "clgrow.strategies.builders",
    "parse_growth": "clgrow.strategies.schedule",
    "SIPlugin": "clgrow.strategies.regularisers",
    "BatchDataPlugin": "clgrow.strategies.fastdata",
    "GrowthMetric": "clgrow.strategies.metrics",
    "InactivityMetric": "clgrow.strategies.metrics",
    "LeanEvaluationPlugin": "clgrow.strategies.evaluation",
    "LeanDispatch": "clgrow.strategies.evaluation",
    "growth_metrics": "clgrow.strategies.metrics",
    "inactivity_metrics": "clgrow.strategies.metrics",
    "TaskHeads": "clgrow.strategies.multihead",
    "with_task_heads": "clgrow.strategies.multihead",
    "GrowPlugin": "clgrow.strategies.plugin",
    "IsolationPlugin": "clgrow.strategies.isolation",
    "GrowthEvent": "clgrow.strategies.events",
    "PlasticityPlugin": "clgrow.strategies.plasticity",
    "ResetOptimizerPlugin": "clgrow.strategies.optimizer_state",
    "ResultsWriter": "clgrow.strategies.results",
    "RunSummary": "clgrow.strategies.summary",
}

if TYPE_CHECKING:
    from clgrow.strategies.builders import OPTIMIZERS, STRATEGIES, build_optimizer, build_strategy, make_grow_plugin
    from clgrow.strategies.evaluation import LeanDispatch, LeanEvaluationPlugin
    from clgrow.strategies.events import GrowthEvent
    from clgrow.strategies.fastdata import BatchDataPlugin
    from clgrow.strategies.isolation import IsolationPlugin
    from clgrow.strategies.metrics import (
        GrowthMetric,
        InactivityMetric,
        growth_metrics,
        inactivity_metrics,
    )
    from clgrow.strategies.multihead import TaskHeads, with_task_heads
    from clgrow.strategies.optimizer_state import ResetOptimizerPlugin
    from clgrow.strategies.plasticity import PlasticityPlugin
    from clgrow.strategies.plugin import GrowPlugin
    from clgrow.strategies.regularisers import SIPlugin
    from clgrow.strategies.results import ResultsWriter
    from clgrow.strategies.schedule import GROWTH_PRESETS, GrowthConfig, parse_growth
    from clgrow.strategies.summary import RunSummary


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())


__all__ = list(_LAZY)  # every public name, spelled once (in the table above)
