"""Avalanche integration: the growth plugin, inactivity and growth metrics, strategy builders."""

from clgrow.strategies.builders import (
    GROWTH_PRESETS,
    OPTIMIZERS,
    REFERENCE_STRATEGIES,
    STRATEGIES,
    build_optimizer,
    build_strategy,
    make_grow_plugin,
    parse_growth,
)
from clgrow.strategies.compat import SIPlugin
from clgrow.strategies.metrics import GrowthMetric, InactivityMetric, growth_metrics, inactivity_metrics
from clgrow.strategies.multihead import MultiHeadGrowableMLP
from clgrow.strategies.plugin import GrowPlugin, GrowthEvent
from clgrow.strategies.results import ResultsWriter
from clgrow.strategies.summary import RunSummary

__all__ = [
    "GrowPlugin",
    "GrowthEvent",
    "inactivity_metrics",
    "growth_metrics",
    "InactivityMetric",
    "GrowthMetric",
    "build_strategy",
    "build_optimizer",
    "OPTIMIZERS",
    "SIPlugin",
    "make_grow_plugin",
    "parse_growth",
    "GROWTH_PRESETS",
    "STRATEGIES",
    "REFERENCE_STRATEGIES",
    "MultiHeadGrowableMLP",
    "ResultsWriter",
    "RunSummary",
]
