"""clgrow: grow ReLU networks with the Shared-Weights Extender and Steepest Voting Distributor.

Pure PyTorch; nothing here imports Avalanche.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clgrow._lazy import lazy_attributes

# Names resolve on first use, so that ``import clgrow`` (and the command line's parser) does not
# import torch before it is needed.
_LAZY = {
    "iter_passes": "clgrow.data",
    "unpack": "clgrow.data",
    "Distributor": "clgrow.distributor",
    "FixedLayerDistributor": "clgrow.distributor",
    "ProportionalDistributor": "clgrow.distributor",
    "UniformDistributor": "clgrow.distributor",
    "distributors": "clgrow.distributor",
    "GROWTH_PRESETS": "clgrow.config",
    "GrowthConfig": "clgrow.config",
    "parse_growth": "clgrow.config",
    "ConfigError": "clgrow.errors",
    "GrowthError": "clgrow.errors",
    "Extender": "clgrow.extender",
    "extenders": "clgrow.extender",
    "GradMaxExtender": "clgrow.gradmax",
    "GrowthReport": "clgrow.grow",
    "Probe": "clgrow.disruption",
    "ProbeChange": "clgrow.disruption",
    "probe_outputs": "clgrow.disruption",
    "output_change": "clgrow.disruption",
    "grow": "clgrow.grow",
    "InactivityAccumulator": "clgrow.inactivity",
    "InactivityStats": "clgrow.inactivity",
    "LayerInactivity": "clgrow.inactivity",
    "measure_inactivity": "clgrow.inactivity",
    "mlp": "clgrow.models",
    "cnn": "clgrow.models",
    "resnet": "clgrow.models",
    "Growable": "clgrow.sites",
    "GrowableModule": "clgrow.sites",
    "as_growable": "clgrow.sites",
    "find_sites": "clgrow.trace",
    "default_init": "clgrow.surgery",
    "Net2NetExtender": "clgrow.net2net",
    "RandomExtender": "clgrow.random_extender",
    "ReDo": "clgrow.plasticity",
    "ContinualBackprop": "clgrow.plasticity",
    "PlasticityMethod": "clgrow.plasticity",
    "plasticity_methods": "clgrow.plasticity",
    "reset_units": "clgrow.plasticity",
    "build_plasticity_method": "clgrow.plasticity",
    "SVoD": "clgrow.svod",
    "SWE": "clgrow.swe",
    "coupled_weights": "clgrow.swe",
}

if TYPE_CHECKING:
    from clgrow.config import GROWTH_PRESETS, GrowthConfig, parse_growth
    from clgrow.data import iter_passes, unpack
    from clgrow.disruption import Probe, ProbeChange, output_change, probe_outputs
    from clgrow.distributor import (
        Distributor,
        FixedLayerDistributor,
        ProportionalDistributor,
        UniformDistributor,
        distributors,
    )
    from clgrow.errors import ConfigError, GrowthError
    from clgrow.extender import Extender, extenders
    from clgrow.gradmax import GradMaxExtender
    from clgrow.grow import GrowthReport, grow
    from clgrow.inactivity import InactivityAccumulator, InactivityStats, LayerInactivity, measure_inactivity
    from clgrow.models import cnn, mlp, resnet
    from clgrow.net2net import Net2NetExtender
    from clgrow.plasticity import (
        ContinualBackprop,
        PlasticityMethod,
        ReDo,
        build_plasticity_method,
        plasticity_methods,
        reset_units,
    )
    from clgrow.random_extender import RandomExtender
    from clgrow.sites import Growable, GrowableModule, as_growable
    from clgrow.surgery import default_init
    from clgrow.svod import SVoD
    from clgrow.swe import SWE, coupled_weights
    from clgrow.trace import find_sites


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals(), load_all=True)


__version__ = "0.1.0"

__all__ = list(_LAZY)  # every public name, spelled once (in the table above)
