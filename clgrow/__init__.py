"""clgrow: grow ReLU networks with the Shared-Weights Extender and Steepest Voting Distributor.

Pure PyTorch; nothing here imports Avalanche.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clgrow._lazy import lazy_attributes
from clgrow._moved import install

install()  # pickles of clgrow 0.1 (Avalanche's checkpoints) find its moved modules

# Names resolve on first use, so that ``import clgrow`` (and the command line's parser) does not
# import torch before it is needed.
_LAZY = {
    "iter_passes": "clgrow.data",
    "unpack": "clgrow.data",
    "Distributor": "clgrow.methods.distributor",
    "FixedLayerDistributor": "clgrow.methods.distributor",
    "ProportionalDistributor": "clgrow.methods.distributor",
    "UniformDistributor": "clgrow.methods.distributor",
    "distributors": "clgrow.methods.distributor",
    "ConfigError": "clgrow.errors",
    "GrowthError": "clgrow.errors",
    "Extender": "clgrow.methods.extender",
    "extenders": "clgrow.methods.extender",
    "GradMaxExtender": "clgrow.methods.gradmax",
    "GrowthReport": "clgrow.methods.grow",
    "Probe": "clgrow.measure.disruption",
    "ProbeChange": "clgrow.measure.disruption",
    "probe_outputs": "clgrow.measure.disruption",
    "output_change": "clgrow.measure.disruption",
    "grow": "clgrow.methods.grow",
    "InactivityAccumulator": "clgrow.measure.inactivity",
    "InactivityStats": "clgrow.measure.inactivity",
    "LayerInactivity": "clgrow.measure.inactivity",
    "measure_inactivity": "clgrow.measure.inactivity",
    "mlp": "clgrow.models",
    "cnn": "clgrow.models",
    "resnet": "clgrow.models",
    "Growable": "clgrow.sites",
    "GrowableModule": "clgrow.sites",
    "as_growable": "clgrow.sites",
    "find_sites": "clgrow.discovery",
    "default_init": "clgrow.surgery",
    "Net2NetExtender": "clgrow.methods.net2net",
    "RandomExtender": "clgrow.methods.random_extender",
    "ReDo": "clgrow.methods.plasticity",
    "ContinualBackprop": "clgrow.methods.plasticity",
    "PlasticityMethod": "clgrow.methods.plasticity",
    "plasticity_methods": "clgrow.methods.plasticity",
    "reset_units": "clgrow.methods.plasticity",
    "build_plasticity_method": "clgrow.methods.plasticity",
    "SVoD": "clgrow.methods.svod",
    "SWE": "clgrow.methods.swe",
    "coupled_weights": "clgrow.methods.swe",
}

if TYPE_CHECKING:
    from clgrow.data import iter_passes, unpack
    from clgrow.discovery import find_sites
    from clgrow.errors import ConfigError, GrowthError
    from clgrow.measure.disruption import Probe, ProbeChange, output_change, probe_outputs
    from clgrow.measure.inactivity import InactivityAccumulator, InactivityStats, LayerInactivity, measure_inactivity
    from clgrow.methods.distributor import (
        Distributor,
        FixedLayerDistributor,
        ProportionalDistributor,
        UniformDistributor,
        distributors,
    )
    from clgrow.methods.extender import Extender, extenders
    from clgrow.methods.gradmax import GradMaxExtender
    from clgrow.methods.grow import GrowthReport, grow
    from clgrow.methods.net2net import Net2NetExtender
    from clgrow.methods.plasticity import (
        ContinualBackprop,
        PlasticityMethod,
        ReDo,
        build_plasticity_method,
        plasticity_methods,
        reset_units,
    )
    from clgrow.methods.random_extender import RandomExtender
    from clgrow.methods.svod import SVoD
    from clgrow.methods.swe import SWE, coupled_weights
    from clgrow.models import cnn, mlp, resnet
    from clgrow.sites import Growable, GrowableModule, as_growable
    from clgrow.surgery import default_init


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals(), load_all=True)


__version__ = "0.2.0"

__all__ = list(_LAZY)  # every public name, spelled once (in the table above)
