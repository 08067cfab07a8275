"""What a growth step leaves behind (:class:`GrowthEvent`) and the probes it is measured on.

Shared by :class:`~clgrow.strategies.plugin.GrowPlugin` and
:class:`~clgrow.strategies.prune_plugin.PrunePlugin`: a seeded draw of samples of an experience
(:func:`draw_probe`), and whether a strategy's training data replay old tasks (:func:`rehearses`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from clgrow import GrowthReport
from clgrow.measure.disruption import Probe, ProbeChange

__all__ = ["GrowthEvent", "draw_probe", "rehearses", "mean_or_none"]


def rehearses(strategy: Any) -> bool:
    """Whether the strategy's training data outnumber the current experience's: it replays
    (a buffer, or every experience so far), so its growth data hold old tasks too."""
    loader = strategy.dataloader
    datasets = getattr(loader, "datasets", None) or [getattr(loader, "dataset", None)]
    try:
        size = sum(len(d) for d in datasets if d is not None)
        return size > len(strategy.experience.dataset)
    except TypeError:  # a loader without sized data sets: nothing to tell
        return False


def draw_probe(dataset: Any, experience: int, n: int, skip: int = 0) -> Probe:
    """``n`` samples of an Avalanche dataset (all if it has fewer), with its evaluation transforms.

    The indices come from a generator seeded with ``experience``, so the probe is the same in
    every run and drawing it leaves the global random state (training) untouched. ``skip``: leave
    out the first ``skip`` of that draw (a second probe disjoint from the first).
    """
    ds = dataset.eval() if hasattr(dataset, "eval") else dataset
    gen = torch.Generator().manual_seed(int(experience))
    idx = torch.randperm(len(ds), generator=gen)[skip : skip + n].sort().values.tolist()
    items = [ds[i] for i in idx]
    x = torch.stack([torch.as_tensor(it[0]) for it in items]) if items else torch.empty(0)
    y = torch.as_tensor([int(it[1]) for it in items], dtype=torch.long)
    t = torch.as_tensor([int(it[2]) if len(it) > 2 else 0 for it in items], dtype=torch.long)
    return Probe(int(experience), x, y, t)


@dataclass
class GrowthEvent:
    """One growth step taken by the plugin, with what it did to the experiences seen before it
    (``disruption``: one :class:`~clgrow.ProbeChange` per probed experience, empty when none)."""

    experience: int
    epoch: int
    report: GrowthReport
    disruption: list[ProbeChange] = dataclasses.field(default_factory=list)
    #: Seconds spent on the probes (outputs before and after the step), outside the step itself.
    probe_seconds: float = 0.0

    @property
    def disruption_drop(self) -> float | None:
        """Mean accuracy drop over the probed experiences (``None`` when none was probed)."""
        return mean_or_none([c.drop for c in self.disruption])

    @property
    def disruption_kl(self) -> float | None:
        """Mean output KL divergence over the probed experiences (``None`` when none was probed)."""
        return mean_or_none([c.kl for c in self.disruption])

    def to_dict(self) -> dict[str, Any]:
        """Plain data without tensors or method details (what checkpoints keep).

        New units are always appended, so their indices follow from the sizes before and after.
        """
        r = self.report
        return {
            "experience": self.experience,
            "epoch": self.epoch,
            "allocation": dict(r.allocation),
            "seconds": dict(r.seconds),
            "cohort": r.cohort,
            "hidden_sizes_before": list(r.hidden_sizes_before),
            "hidden_sizes_after": list(r.hidden_sizes_after),
            "extender": r.extender,
            "distributor": r.distributor,
            "disruption": [c.to_dict() for c in self.disruption],
            "probe_seconds": self.probe_seconds,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GrowthEvent:
        """Inverse of :meth:`to_dict` (``info`` is not kept)."""
        before, after = d["hidden_sizes_before"], d["hidden_sizes_after"]
        new_units = {i: torch.arange(b, a) for i, (b, a) in enumerate(zip(before, after)) if a > b}
        report = GrowthReport(
            dict(d["allocation"]),
            new_units,
            dict(d["seconds"]),
            d["cohort"],
            list(before),
            list(after),
            d["extender"],
            d["distributor"],
        )
        return cls(
            d["experience"],
            d["epoch"],
            report,
            [ProbeChange(**c) for c in d.get("disruption", [])],
            float(d.get("probe_seconds", 0.0)),
        )


def mean_or_none(values: list[float]) -> float | None:
    """The mean, or ``None`` of no values."""
    return sum(values) / len(values) if values else None
