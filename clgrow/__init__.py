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
    name: module
    for module, names in {
        "clgrow.data": "iter_passes unpack",
        "clgrow.methods.distributor": "Distributor FixedLayerDistributor ProportionalDistributor UniformDistributor distributors",
        "clgrow.errors": "ConfigError GrowthError",
        "clgrow.checkpoint": "save_grown load_grown",
        "clgrow.methods.extender": "Extender extenders Net2NetExtender RandomExtender",
        "clgrow.methods.gradmax": "GradMaxExtender",
        "clgrow.methods.grow": "GrowthReport grow",
        "clgrow.measure.disruption": "Probe ProbeChange probe_outputs output_change",
        "clgrow.measure.inactivity": "InactivityAccumulator InactivityStats LayerInactivity measure_inactivity",
        "clgrow.models": "mlp cnn resnet",
        "clgrow.sites": "Growable GrowableModule as_growable",
        "clgrow.discovery": "find_sites",
        "clgrow.surgery": "default_init",
        "clgrow.methods.plasticity": "ReDo ContinualBackprop PlasticityMethod plasticity_methods reset_units build_plasticity_method",
        "clgrow.methods.svod": "SVoD",
        "clgrow.methods.swe": "SWE coupled_weights",
    }.items()
    for name in names.split()
}

if TYPE_CHECKING:
    from clgrow.checkpoint import load_grown, save_grown
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
    from clgrow.methods.extender import Extender, Net2NetExtender, RandomExtender, extenders
    from clgrow.methods.gradmax import GradMaxExtender
    from clgrow.methods.grow import GrowthReport, grow
    from clgrow.methods.plasticity import (
        ContinualBackprop,
        PlasticityMethod,
        ReDo,
        build_plasticity_method,
        plasticity_methods,
        reset_units,
    )
    from clgrow.methods.svod import SVoD
    from clgrow.methods.swe import SWE, coupled_weights
    from clgrow.models import cnn, mlp, resnet
    from clgrow.sites import Growable, GrowableModule, as_growable
    from clgrow.surgery import default_init


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals(), load_all=True)


__version__ = "0.2.0"

__all__ = list(_LAZY)  # every public name, spelled once (in the table above)
