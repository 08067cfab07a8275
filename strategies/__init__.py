"""Avalanche integration: the growth plugin, inactivity and growth metrics, strategy builders."""

from strategies.compat import make_optimizers_checkpointable
from strategies.builders import GROWTH_PRESETS, STRATEGIES, GrowthSpec, build_strategy, make_grow_plugin, parse_growth
from strategies.metrics import GrowthMetric, InactivityMetric, growth_metrics, inactivity_metrics
from strategies.multihead import MultiHeadGrowableMLP
from strategies.plugin import GrowPlugin, GrowthEvent
from strategies.results import ResultsWriter

make_optimizers_checkpointable()

__all__ = [
    "GrowPlugin",
    "GrowthEvent",
    "inactivity_metrics",
    "growth_metrics",
    "InactivityMetric",
    "GrowthMetric",
    "build_strategy",
    "make_grow_plugin",
    "parse_growth",
    "GrowthSpec",
    "GROWTH_PRESETS",
    "STRATEGIES",
    "MultiHeadGrowableMLP",
    "ResultsWriter",
]
