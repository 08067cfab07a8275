"""PrunePlugin: remove dead or dormant hidden units at each new experience, before growth.

A stream then recycles capacity: units that died on the previous tasks leave before the new
experience's growth step adds fresh ones. Which units: those dead (zero on every sample) or
τ-dormant on the data of every experience seen so far, a fixed sample kept from each trained
experience plus a few batches of the new one. Scoring on the new experience's data alone would
remove units that only old tasks use (measured: BENCHMARKS.md, "Pruning"). The
optimizer state and every regulariser's per-parameter state (EWC, SI, MAS, RWalk, any plugin's,
found as growth finds it) are sliced to the units that stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from avalanche.core import SupervisedPlugin

from clgrow import GrowthError
from clgrow.disruption import Probe
from clgrow.prune import PruneReport, prune, select_units
from clgrow.strategies.optimizer_state import carry_sliced_state, optimizer_state_by_name
from clgrow.strategies.param_state import find_param_state, slice_param_state
from clgrow.strategies.plugin import draw_probe

__all__ = ["PrunePlugin", "PruneEvent", "PRUNE_SELECTORS", "find_prune_plugin"]

#: What a stream can prune (``select_units`` selectors that read activity).
PRUNE_SELECTORS = ("dead", "dormant")


@dataclass
class PruneEvent:
    """One prune step of a stream: at the start of training ``experience``."""

    experience: int
    report: PruneReport


class PrunePlugin(SupervisedPlugin):
    """Prune at the start of every training experience from ``from_experience`` on.

    Parameters
    ----------
    how : {"dead", "dormant"}
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

    def __init__(
        self,
        how: str = "dead",
        tau: float = 0.025,
        from_experience: int = 1,
        probe_batches: int = 8,
        min_units: int = 1,
        probe: int = 200,
    ) -> None:
        super().__init__()
        if how not in PRUNE_SELECTORS:
            raise GrowthError(f"prune: unknown selector {how!r}; known: {', '.join(PRUNE_SELECTORS)}")
        self.how, self.tau, self.from_experience = how, tau, from_experience
        self.probe_batches, self.min_units = probe_batches, min_units
        self.events: list[PruneEvent] = []
        self.probe = probe
        self.probes: list[Probe] = []

    def after_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        experience = int(strategy.clock.train_exp_counter) - 1
        if self.probe > 0 and all(p.experience != experience for p in self.probes):
            self.probes.append(draw_probe(strategy.experience.dataset, experience, self.probe))

    def before_training_epoch(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        experience = int(strategy.clock.train_exp_counter)
        if strategy.clock.train_exp_epochs != 0 or experience < self.from_experience:
            return
        model = strategy.model
        batches: list[Any] = [(p.x, p.y, p.t) for p in self.probes if len(p.y)]
        for i, batch in enumerate(strategy.dataloader):
            if i >= self.probe_batches:
                break
            batches.append(batch)
        units = select_units(model, self.how, batches, tau=self.tau)
        units = {  # a layer keeps min_units at least: the chosen units of the highest indices stay
            layer: idx[: max(0, min(idx.numel(), model.hidden_sizes[layer] - self.min_units))]
            for layer, idx in units.items()
        }
        units = {layer: idx for layer, idx in units.items() if idx.numel()}
        if not units:
            return
        old_shapes = {n: p.shape for n, p in model.named_parameters()}
        stores = find_param_state(strategy.plugins, model)
        opt_state = optimizer_state_by_name(strategy.optimizer, model)
        report = prune(model, units, min_units=self.min_units)
        strategy.make_optimizer()
        carry_sliced_state(strategy.optimizer, model, opt_state, report.slices)
        slice_param_state(stores, report.slices, old_shapes)
        self.events.append(PruneEvent(experience, report))

    def units_pruned(self, experience: int) -> int:
        """Units removed at the start of training ``experience``."""
        return sum(e.report.count for e in self.events if e.experience == experience)

    def state_dict(self) -> dict[str, Any]:
        return {"events": [(e.experience, {k: v.tolist() for k, v in e.report.removed.items()}) for e in self.events]}


def find_prune_plugin(strategy: Any) -> PrunePlugin | None:
    """The strategy's PrunePlugin, if it has one."""
    return next((p for p in strategy.plugins if isinstance(p, PrunePlugin)), None)
