"""clgrow: grow ReLU networks with the Shared-Weights Extender and Steepest Voting Distributor.

Pure PyTorch; nothing here imports Avalanche.
"""

from clgrow.data import iter_passes, unpack
from clgrow.distributor import (
    Distributor,
    FixedLayerDistributor,
    ProportionalDistributor,
    UniformDistributor,
    distributors,
)
from clgrow.config import GROWTH_PRESETS, GrowthConfig, parse_growth
from clgrow.errors import ConfigError, GrowthError
from clgrow.extender import Extender, extenders
from clgrow.gradmax import GradMaxExtender
from clgrow.grow import GrowthReport, grow
from clgrow.inactivity import InactivityAccumulator, InactivityStats, LayerInactivity, measure_inactivity
from clgrow.model import GrowableMLP, default_linear_init
from clgrow.net2net import Net2NetExtender
from clgrow.random_extender import RandomExtender
from clgrow.svod import SVoD
from clgrow.swe import SWE, coupled_weights

__version__ = "0.1.0"

__all__ = [
    "GrowableMLP",
    "grow",
    "GrowthReport",
    "GrowthError",
    "ConfigError",
    "GrowthConfig",
    "GROWTH_PRESETS",
    "parse_growth",
    "measure_inactivity",
    "InactivityStats",
    "InactivityAccumulator",
    "LayerInactivity",
    "Extender",
    "Distributor",
    "SWE",
    "SVoD",
    "RandomExtender",
    "Net2NetExtender",
    "GradMaxExtender",
    "UniformDistributor",
    "ProportionalDistributor",
    "FixedLayerDistributor",
    "extenders",
    "distributors",
    "coupled_weights",
    "default_linear_init",
    "iter_passes",
    "unpack",
]
