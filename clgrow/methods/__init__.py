"""The built-in growth and plasticity methods' declarations: names, arguments, defaults, bounds, help.

This is the one place a built-in method's arguments are declared (torch is not imported here).
Each class below is registered under its name and points at the class implementing it, which
takes it as its ``Params``. To add a method: its implementation module, a declaration here, and
its test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from clgrow.params import NoParams, Params, param
from clgrow.registry import distributors, extenders, plasticity_methods

__all__ = [
    "SWEParams",
    "SVoDParams",
    "GradMaxParams",
    "Net2NetParams",
    "FixedLayerParams",
    "ReDoParams",
    "CBPParams",
    "PAPER_SWE",
    "PAPER_SVOD",
    "OLD_ROWS",
    "CONSUMERS",
    "COUPLINGS",
    "SCHEDULES",
    "COUPLING_SCALES",
    "NORMALISATIONS",
    "PRUNE_METHODS",
    "PRUNE_SELECTORS",
    "STREAM_PRUNE_SELECTORS",
    "MAX_PASSES",
    "MAX_LR",
]

#: How ``clgrow.methods.prune.prune`` removes units.
PRUNE_METHODS = ("drop", "swe")
#: How ``clgrow.methods.prune.select_units`` chooses them.
PRUNE_SELECTORS = ("dead", "dormant", "utility", "norm")
#: The selectors a stream prunes by (``PrunePlugin``, a run's ``prune_select``): those with a threshold.
STREAM_PRUNE_SELECTORS = ("dead", "dormant")

COUPLINGS = ("factored", "dense")
SCHEDULES = ("joint", "sequential")
COUPLING_SCALES = ("sqrt", "k", "none")
NORMALISATIONS = ("column", "pair")
#: What happens to the old partner rows after the coupling (``clgrow.methods.coupling``).
OLD_ROWS = ("move", "restore", "keep")
#: Which consumers read the new units during the adjustment (``clgrow.methods.swe``).
CONSUMERS = ("all", "new", "isolated", "scaffold", "protect")
_GiB2 = 2 * 1024**3
#: Bounds a user's budget cannot pass: a hundred passes over the growth data per step, a
#: learning rate of 10 (beyond both, a step only runs for hours or overflows float32).
MAX_PASSES, MAX_LR = 100, 10
#: What ``passes=None`` (SWE) and ``train_passes``/``vote_passes=None`` (SVoD) become: in plain
#: training, then at a stream's new experience, where the growth data are a whole experience and
#: growth happens at every one (chosen by the stream frontier, BENCHMARKS.md).
SWE_PASSES = (0.5, 0.15)
SVOD_PASSES = ((0.1, 0.05), (0.025, 0.0125))


@extenders.declare("swe", impl="clgrow.methods.swe:SWE")
@dataclass(frozen=True)
class SWEParams(Params):
    """Shared-Weights Extender (:class:`clgrow.methods.swe.SWE`; each help line below is its ``Parameters``)."""

    passes: float | None = param(
        None,
        "adjustment budget in passes over the growth data, per layer if sequential (none: "
        f"{SWE_PASSES[0]}, and {SWE_PASSES[1]} at a stream's new experience)",
        ge=0,
        le=MAX_PASSES,
    )
    lr: float = param(1e-3, "Adam learning rate of the consumer weights", gt=0, le=MAX_LR)
    init_std: float = param(1e-4, "std of the dense coupling's initialisation", ge=0)
    partners: int | None = param(None, "old units coupled with each new unit (none: all)", ge=1)
    max_coupling_bytes: int = param(_GiB2, "memory guard of a dense coupling", ge=1)
    on_oversize: str = param("error", "a dense coupling over the guard", choices=("error", "subsample"))
    coupling_lr: float | None = param(0.03, "coupling step size before coupling_scale (none: lr)", gt=0, le=MAX_LR)
    coupling: str = param("factored", "representation of the coupling", choices=COUPLINGS)
    schedule: str = param("joint", "all growing layers at once, or one at a time", choices=SCHEDULES)
    normalise: str = param("column", "second moment of the factored coupling", choices=NORMALISATIONS)
    clip: float | None = param(0.5, "bound on each row's normalised step (none: no bound)", gt=0)
    coupling_scale: str = param("sqrt", "divide the coupling step by sqrt(k*s), k, or nothing", choices=COUPLING_SCALES)
    trust: float | None = param(0.01, "trust region: old rows move at most this fraction of their norm", gt=0)
    trust_snr: float | None = param(0.5, "widen the region once the gradient's signal-to-noise falls below", gt=0, le=1)
    old_rows: str = param(
        "auto", "old partner rows after coupling (auto: by stream setting)", choices=(*OLD_ROWS, "auto")
    )
    consumers: str = param(
        "auto", "consumers reading new units while adjusting (auto: by stream setting)", choices=(*CONSUMERS, "auto")
    )
    new_norm: float | None = param(1.0, "cap on new rows' norm, times the old rows' mean (not with move)", gt=0)
    rehearsal_consumers: str = param(
        "protect", "auto consumers at a new task whose growth data replay old tasks", choices=CONSUMERS
    )


#: The paper's procedure: a dense coupling adjusted layer by layer, one pass each, Adam at ``lr``
#: on the coupling, old rows moved and every consumer reading the new units (preset ``swe-svod-paper``).
PAPER_SWE = SWEParams(
    coupling="dense",
    schedule="sequential",
    passes=1.0,
    coupling_lr=None,
    coupling_scale="none",
    trust=None,
    old_rows="move",
    consumers="all",
    rehearsal_consumers="all",
)


@distributors.declare("svod", impl="clgrow.methods.svod:SVoD")
@dataclass(frozen=True)
class SVoDParams(Params):
    """Steepest Voting Distributor (:class:`clgrow.methods.svod.SVoD`)."""

    train_passes: float | None = param(
        None,
        f"passes training the candidate copy (none: {SVOD_PASSES[0][0]}, and {SVOD_PASSES[1][0]} at a stream's "
        "new experience; paper: 1)",
        ge=0,
        le=MAX_PASSES,
    )
    vote_passes: float | None = param(
        None,
        f"passes accumulating the gate gradients (none: {SVOD_PASSES[0][1]}, and {SVOD_PASSES[1][1]} at a new "
        "experience; paper: 1)",
        gt=0,
        le=MAX_PASSES,
    )
    candidates: int = param(2, "candidates per layer, a multiple of K", ge=1)
    width_cap: float | None = param(
        0.5,
        "at most this many candidates per unit a layer has (the copy then costs at most (1 + cap)² the "
        "model; none: no cap, the paper)",
        gt=0,
    )

    def per_layer(self, sizes: Sequence[int], k: int, layers: Sequence[int]) -> dict[int, int]:
        """Candidates each of ``layers`` (widths ``sizes``) gets for a step of ``k`` units:
        ``candidates · k``, capped at ``ceil(width_cap · width)`` but never below ``ceil(k / L)``
        (the pool must hold ``k`` votes)."""
        cand = self.candidates * k
        if self.width_cap is None:
            return {i: cand for i in layers}
        least = -(-k // len(layers))
        return {i: min(cand, max(math.ceil(self.width_cap * sizes[i]), least)) for i in layers}

    init_range: float = param(0.01, "candidates' weights uniform in +-init_range", gt=0)
    lr: float = param(1e-3, "RMSprop learning rate of the candidates", gt=0, le=MAX_LR)
    momentum: float = param(0.1, "RMSprop momentum", ge=0, lt=1)
    alpha: float = param(0.9, "RMSprop smoothing constant", ge=0, lt=1)
    max_copy_bytes: int = param(_GiB2, "memory allowed for the candidate copy", ge=1)
    on_oversize: str = param(
        "error", "a copy over the budget: refuse, or vote with fewer candidates", choices=("error", "reduce")
    )


#: The paper's budget: one pass to train the candidates, one to vote, 2K candidates in every layer.
PAPER_SVOD = SVoDParams(train_passes=1.0, vote_passes=1.0, width_cap=None)


@extenders.declare("random", impl="clgrow.methods.extender:RandomExtender")
@dataclass(frozen=True)
class RandomParams(NoParams):
    """Default-initialised incoming weights, zero outgoing (:class:`clgrow.methods.extender.RandomExtender`)."""


@extenders.declare("net2net", impl="clgrow.methods.extender:Net2NetExtender")
@dataclass(frozen=True)
class Net2NetParams(Params):
    """Split existing units (:class:`clgrow.methods.extender.Net2NetExtender`)."""

    noise: float = param(0.01, "relative noise on the copies' incoming weights (0: identical copies)", ge=0)


@extenders.declare("gradmax", impl="clgrow.methods.gradmax:GradMaxExtender")
@dataclass(frozen=True)
class GradMaxParams(Params):
    """GradMax (:class:`clgrow.methods.gradmax.GradMaxExtender`)."""

    passes: float = param(0.25, "passes estimating the gradient product", gt=0, le=MAX_PASSES)
    out_scale: float = param(1e-2, "norm of every new outgoing column", ge=0)
    incoming_norm: float | None = param(
        None, "norm of the folded first-step rows (none: 1/sqrt(3), a default Linear row's; 0: zero rows)", ge=0
    )


@distributors.declare("uniform", impl="clgrow.methods.distributor:UniformDistributor")
@dataclass(frozen=True)
class UniformParams(NoParams):
    """Equal shares (:class:`clgrow.methods.distributor.UniformDistributor`)."""


@distributors.declare("proportional", impl="clgrow.methods.distributor:ProportionalDistributor")
@dataclass(frozen=True)
class ProportionalParams(NoParams):
    """Shares proportional to width (:class:`clgrow.methods.distributor.ProportionalDistributor`)."""


@distributors.declare("fixed", impl="clgrow.methods.distributor:FixedLayerDistributor")
@dataclass(frozen=True)
class FixedLayerParams(Params):
    """All units to one layer (:class:`clgrow.methods.distributor.FixedLayerDistributor`)."""

    layer: int | None = param(None, "the layer (negative: from the last; none: the last eligible)")


@plasticity_methods.declare("redo", impl="clgrow.methods.plasticity:ReDo")
@dataclass(frozen=True)
class ReDoParams(Params):
    """ReDo, recycling tau-dormant units (:class:`clgrow.methods.plasticity.ReDo`)."""

    tau: float = param(
        0.025, "threshold on mean|h_i| over the layer's mean (the paper's to show it; 0.1 for performance)", ge=0
    )
    every: int | None = param(None, "also reset every N training steps", ge=1)
    from_experience: int = param(1, "first experience whose start resets units", ge=0)


@plasticity_methods.declare("cbp", impl="clgrow.methods.plasticity:ContinualBackprop")
@dataclass(frozen=True)
class CBPParams(Params):
    """Continual backprop (:class:`clgrow.methods.plasticity.ContinualBackprop`)."""

    replacement_rate: float = param(1e-4, "rho, mature units replaced per step (paper: 1e-4)", ge=0, le=1)
    decay: float = param(0.99, "eta, the utility's running-average decay (paper: 0.99)", ge=0, lt=1)
    maturity: int = param(100, "steps a unit is protected after birth or reset (paper: 100)", ge=0)
