"""PrunePlugin: remove dead or dormant hidden units at each new experience, before growth.

A stream then recycles capacity: units that died on the previous tasks leave before the new
experience's growth step adds fresh ones (under a ``max_params`` budget, growth refills what
pruning freed). Which units: those dead (zero on every sample) or τ-dormant on the data of every
experience seen so far, a fixed sample kept from each trained experience plus a few batches of the
new one. Scoring on the new experience's data alone would remove units that only old tasks use
(measured: BENCHMARKS.md, "Pruning"). How: ``drop`` or ``swe`` (SWE's reverse transfer, fitted on
the same data; :mod:`clgrow.methods.prune`). The optimizer state, every regulariser's per-parameter
state (EWC, SI, MAS, RWalk, any plugin's, found as growth finds it) and the resets' per-unit state
(continual backprop's utilities and ages, reset labels) are sliced to the units that stay. Each
prune's disruption, the accuracy on every seen experience's probe right before against right
after, is recorded as growth's is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from avalanche.core import SupervisedPlugin

from clgrow import GrowthError
from clgrow.measure.disruption import Probe, ProbeChange, output_change, probe_outputs
from clgrow.methods import STREAM_PRUNE_SELECTORS
from clgrow.methods.prune import METHODS, PruneReport, prune, select_units
from clgrow.sites import growable_from_loader
from clgrow.strategies.events import draw_probe, mean_or_none
from clgrow.strategies.optimizer_state import carry_sliced_state, optimizer_state_by_name
from clgrow.strategies.param_state import find_param_state, slice_param_state

__all__ = ["PrunePlugin", "PruneEvent", "PRUNE_SELECTORS", "PRUNE_METHODS", "find_prune_plugin"]

#: Which units a stream prunes (``select_units`` selectors with a threshold).
PRUNE_SELECTORS = STREAM_PRUNE_SELECTORS
#: How (``clgrow.methods.prune.METHODS``).
PRUNE_METHODS = METHODS


@dataclass
class PruneEvent:
    """One prune step of a stream: at the start of training ``experience``; ``disruption``: per
    experience trained before it, the accuracy and output KL on its probe right before and after."""

    experience: int
    report: PruneReport
    disruption: list[ProbeChange] = field(default_factory=list)

    @property
    def disruption_drop(self) -> float | None:
        """Mean accuracy drop over the probed experiences (``None`` when none was probed)."""
        return mean_or_none([c.drop for c in self.disruption if c.drop == c.drop])  # an empty probe's NaN left out


class PrunePlugin(SupervisedPlugin):
    """Prune at the start of every training experience from ``from_experience`` on.

    Parameters
    ----------
    how : {"dead", "dormant"}
        Which units leave.
    method : {"drop", "swe"}
        How they leave.
    tau : float
        Dormancy threshold (``dormant`` only).
    from_experience : int
        First experience whose start prunes (default 1: after the first task).
    probe_batches : int
        Batches of the experience's training data the units are scored on.
    min_units : int
        Every layer keeps at least this many units.
    probe : int
        Samples kept from each trained experience to score units on (with the new experience's).
    """

    #: Where it stands among the strategy's plugins (``build_strategy`` sorts by it): dead units leave before resets and growth.
    plugin_order: ClassVar[int] = 30

    def __init__(
        self,
        how: str = "dead",
        method: str = "drop",
        tau: float = 0.025,
        from_experience: int = 1,
        probe_batches: int = 8,
        min_units: int = 1,
        probe: int = 200,
    ) -> None:
        super().__init__()
        if how not in PRUNE_SELECTORS:
            raise GrowthError(f"prune: unknown selector {how!r}; known: {', '.join(PRUNE_SELECTORS)}")
        if method not in PRUNE_METHODS:
            raise GrowthError(f"prune: unknown method {method!r}; known: {', '.join(PRUNE_METHODS)}")
        self.method = method
        self.how, self.tau, self.from_experience = how, tau, from_experience
        self.probe_batches, self.min_units = probe_batches, min_units
        self.events: list[PruneEvent] = []
        self.probe = probe
        self.probes: list[Probe] = []
        #: Disjoint from ``probes`` (never used to choose or fit): what disruption is measured on.
        self.held: list[Probe] = []

    def after_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        experience = int(strategy.clock.train_exp_counter)  # not yet advanced here (as in GrowPlugin)
        if self.probe > 0 and all(p.experience != experience for p in self.probes):
            self.probes.append(draw_probe(strategy.experience.dataset, experience, self.probe))
            self.held.append(draw_probe(strategy.experience.dataset, experience, self.probe, skip=self.probe))

    def before_training_epoch(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        experience = int(strategy.clock.train_exp_counter)
        if strategy.clock.train_exp_epochs != 0 or experience < self.from_experience:
            return
        raw = strategy.model
        batches: list[Any] = [(p.x, p.y, p.t) for p in self.probes if len(p.y)]
        for i, batch in enumerate(strategy.dataloader):
            if i >= self.probe_batches:
                break
            batches.append(batch)
        model = growable_from_loader(raw, batches)  # a module clgrow did not build: its sites traced
        units = select_units(model, self.how, batches, tau=self.tau)
        units = {  # a layer keeps min_units at least: the chosen units of the highest indices stay
            layer: idx[: max(0, min(idx.numel(), model.hidden_sizes[layer] - self.min_units))]
            for layer, idx in units.items()
        }
        units = {layer: idx for layer, idx in units.items() if idx.numel()}
        if not units:
            return
        old_shapes = {n: p.shape for n, p in raw.named_parameters()}
        stores = find_param_state(strategy.plugins, raw)
        opt_state = optimizer_state_by_name(strategy.optimizer, raw)
        before = [probe_outputs(model, p) for p in self.held]
        report = prune(
            model,
            units,
            method=self.method,
            data=batches if self.method == "swe" else None,
            measure=False,  # disruption is measured on the held-out probes below
            min_units=self.min_units,
        )
        after = [probe_outputs(model, p) for p in self.held]
        strategy.make_optimizer()
        carry_sliced_state(strategy.optimizer, raw, opt_state, report.slices)
        slice_param_state(stores, report.slices, old_shapes)
        for plugin in strategy.plugins:  # resets' per-unit state (CBP's utilities and ages, labels)
            if plugin is not self and callable(getattr(plugin, "prune_units", None)):
                plugin.prune_units(report.kept)
        disruption = [output_change(b, a, p.y, p.experience) for b, a, p in zip(before, after, self.held)]
        self.events.append(PruneEvent(experience, report, disruption))

    def units_pruned(self, experience: int) -> int:
        """Units removed at the start of training ``experience``."""
        return sum(e.report.count for e in self.events if e.experience == experience)

    def disruption(self, experience: int) -> float | None:
        """Accuracy the prune at the start of ``experience`` cost on the experiences seen before it."""
        vals = [d for e in self.events if e.experience == experience for d in [e.disruption_drop] if d is not None]
        return sum(vals) / len(vals) if vals else None

    def state_dict(self) -> dict[str, Any]:
        return {"events": [(e.experience, {k: v.tolist() for k, v in e.report.removed.items()}) for e in self.events]}


def find_prune_plugin(strategy: Any) -> PrunePlugin | None:
    """The strategy's PrunePlugin, if it has one."""
    return next((p for p in strategy.plugins if isinstance(p, PrunePlugin)), None)
