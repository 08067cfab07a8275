r"""Dead and dormant hidden units, measured on a probe set in one forward pass.

For the post-ReLU activation :math:`h_i` of unit ``i`` over the probe samples:

* *dead*: :math:`h_i = 0` for every sample;
* :math:`\tau`-*dormant* (Sokar et al., ICML 2023):
  :math:`s_i = \overline{|h_i|} / \big(\tfrac1n \sum_k \overline{|h_k|}\big) \le \tau`, the mean
  over samples of the absolute activation relative to the layer's average. A layer whose
  units are all silent makes every unit dormant. :math:`\tau = 0` makes dormant equal dead.

Counts are reported per hidden layer, overall, for units added by growth (cohort > 0) and
per cohort.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from clgrow.data import model_device, unpack
from clgrow.errors import GrowthError
from clgrow.sites import Growable

__all__ = [
    "LayerInactivity",
    "InactivityStats",
    "InactivityAccumulator",
    "accumulate_activity",
    "measure_inactivity",
    "inactivity_from_activations",
    "dormant_mask",
]


def _fraction(part: int, whole: int) -> float:
    return part / whole if whole else math.nan


@dataclass
class CohortCounts:
    """Units, dead and dormant counts of one cohort in one layer."""

    units: int
    dead: int
    dormant: int


@dataclass
class LayerInactivity:
    """Inactivity counts of one hidden layer."""

    units: int
    dead: int
    dormant: int
    new_units: int
    new_dead: int
    new_dormant: int
    cohorts: dict[int, CohortCounts] = field(default_factory=dict)


@dataclass
class InactivityStats:
    """Inactivity over all hidden layers; fractions are ``nan`` when there is nothing to count."""

    layers: list[LayerInactivity]
    tau: float
    samples: int

    def _sum(self, attr: str) -> int:
        return sum(getattr(layer, attr) for layer in self.layers)

    @property
    def units(self) -> int:
        """All hidden units."""
        return self._sum("units")

    @property
    def new_units(self) -> int:
        """Hidden units added by growth."""
        return self._sum("new_units")

    @property
    def dead_fraction(self) -> float:
        """Dead units / all hidden units."""
        return _fraction(self._sum("dead"), self.units)

    @property
    def dormant_fraction(self) -> float:
        """τ-dormant units / all hidden units."""
        return _fraction(self._sum("dormant"), self.units)

    @property
    def new_dead_fraction(self) -> float:
        """Dead units among those added by growth (``nan`` if none were added)."""
        return _fraction(self._sum("new_dead"), self.new_units)

    @property
    def new_dormant_fraction(self) -> float:
        """τ-dormant units among those added by growth (``nan`` if none were added)."""
        return _fraction(self._sum("new_dormant"), self.new_units)

    def cohort_fractions(self, group: Mapping[int, int] | None = None) -> dict[int, tuple[float, float]]:
        """``{cohort: (dead fraction, dormant fraction)}`` over all layers.

        ``group`` maps cohorts onto keys whose units are pooled (e.g. the training experience
        each growth step happened in); cohorts it does not name keep their own number.
        """
        totals: dict[int, list[int]] = {}
        for layer in self.layers:
            for c, cc in layer.cohorts.items():
                t = totals.setdefault(c if group is None else group.get(c, c), [0, 0, 0])
                t[0] += cc.units
                t[1] += cc.dead
                t[2] += cc.dormant
        return {c: (_fraction(d, u), _fraction(s, u)) for c, (u, d, s) in sorted(totals.items())}


def dormant_mask(mean_abs: Tensor, tau: float) -> Tensor:
    """Which units of one layer are τ-dormant, from their mean absolute activation.

    The one place the rule is written: the metrics count it, ReDo resets by it.

    Parameters
    ----------
    mean_abs : Tensor ``(n,)``
        Mean over samples of ``|h_i|``.
    tau : float

    Returns
    -------
    Tensor ``(n,)`` of bool
        ``s_i <= tau`` with ``s_i = mean_abs_i / mean_k mean_abs_k``; every unit of a layer
        whose units are all silent.
    """
    layer_mean = mean_abs.mean() if mean_abs.numel() else mean_abs.new_zeros(())
    if layer_mean > 0:
        return mean_abs / layer_mean <= tau
    return torch.ones(mean_abs.shape, dtype=torch.bool, device=mean_abs.device)


def inactivity_from_activations(
    abs_sum: Tensor, nonzero: Tensor, samples: int, cohort: Tensor, tau: float
) -> LayerInactivity:
    """Counts for one layer from accumulated statistics.

    Parameters
    ----------
    abs_sum : Tensor ``(n,)``
        Sum over probe samples of ``|h_i|``.
    nonzero : Tensor ``(n,)`` of bool
        Whether unit ``i`` was ever non-zero.
    samples : int
    cohort : LongTensor ``(n,)``
    tau : float
    """
    dead = ~nonzero
    dormant = dormant_mask(abs_sum / max(samples, 1), tau)
    cohorts: dict[int, CohortCounts] = {}
    if cohort.numel():
        # every count per cohort in one bincount each and one transfer (float64 weights count exactly)
        lo = int(cohort.min())
        idx = (cohort - lo).long()
        rows = torch.stack([torch.bincount(idx, weights=w.double()) for w in (torch.ones_like(dead), dead, dormant)])
        for c, (u, d, z) in enumerate(zip(*rows.round().long().tolist())):
            if u:
                cohorts[c + lo] = CohortCounts(u, d, z)
    new = [cc for c, cc in cohorts.items() if c > 0]
    return LayerInactivity(
        units=int(cohort.numel()),
        dead=sum(cc.dead for cc in cohorts.values()),
        dormant=sum(cc.dormant for cc in cohorts.values()),
        new_units=sum(cc.units for cc in new),
        new_dead=sum(cc.dead for cc in new),
        new_dormant=sum(cc.dormant for cc in new),
        cohorts=cohorts,
    )


class InactivityAccumulator:
    """Running ``sum |h|`` and sample count per hidden layer.

    The one place activations are accumulated: :func:`measure_inactivity` feeds it from its
    own forward passes, the Avalanche metric from the model's activation observers.
    A unit was ever non-zero exactly when its ``sum |h|`` is positive (a sum of non-negative
    floats never rounds below any of its terms), so no separate flag is kept.
    A layer whose width changed since the last batch (the model grew) starts afresh.
    """

    def __init__(self, num_layers: int) -> None:
        self.abs_sum: list[Tensor | None] = [None] * num_layers
        self.samples = 0

    @property
    def nonzero(self) -> list[Tensor | None]:
        """Per layer, whether each unit was ever non-zero: Tensor ``(units,)`` of bool."""
        return [None if a is None else a > 0 for a in self.abs_sum]

    def add(self, layer: int, h: Tensor, *, nonnegative: bool = False) -> None:
        """Accumulate activations ``h`` of shape ``(batch, units)`` of one layer.

        ``nonnegative=True`` promises ``h >= 0`` (post-ReLU), which skips taking ``|h|``.
        Samples are counted on layer 0, which every forward pass reaches first.
        """
        h = h.detach()  # so no graph is built (cheaper than a no_grad context on every call)
        # float32 at least: half-precision activations summed over many samples overflow
        total = (h if nonnegative else h.abs()).sum(0, dtype=torch.promote_types(h.dtype, torch.float32))
        known = self.abs_sum[layer]
        if known is None or known.shape[0] != h.shape[1]:
            self.abs_sum[layer] = total
        else:
            known += total
        if layer == 0:
            self.samples += h.shape[0]

    @property
    def complete(self) -> bool:
        """Whether every layer has seen at least one sample."""
        return self.samples > 0 and all(a is not None for a in self.abs_sum)

    def stats(self, cohorts: list[Tensor], tau: float) -> InactivityStats:
        """Counts per layer given each layer's cohort tensor ``(units,)``."""
        if not self.complete:
            raise GrowthError("no activations were accumulated: inactivity needs at least one sample")
        for i, a in enumerate(self.abs_sum):
            if not bool(torch.isfinite(a).all()):  # type: ignore[arg-type]
                # NaN scores would compare as "not above tau" and pass for dormant units
                raise GrowthError(
                    f"activations of hidden layer {i} are not finite: the model has diverged, "
                    "so its inactivity is undefined"
                )
        layers = [
            inactivity_from_activations(a, nz, self.samples, c.to(a.device), tau)  # type: ignore[arg-type,union-attr]
            for a, nz, c in zip(self.abs_sum, self.nonzero, cohorts)
        ]
        return InactivityStats(layers=layers, tau=float(tau), samples=self.samples)


@torch.no_grad()
def measure_inactivity(
    model: nn.Module, loader: Iterable[Any], tau: float = 0.025, max_batches: int | None = None
) -> InactivityStats:
    """Dead and τ-dormant counts of every hidden unit of ``model`` on the probe ``loader``.

    The model runs in eval mode (dropout off) and is put back in its previous mode.
    """
    from clgrow.sites import growable_from_loader

    grown = growable_from_loader(model, loader)  # its last trace, or one on the first batch
    if tau < 0 or not math.isfinite(tau):
        raise GrowthError(f"tau must be a finite number >= 0, got {tau}")
    acc = accumulate_activity(grown, loader, max_batches)
    return acc.stats([grown.cohort(i) for i in range(grown.num_hidden_layers)], tau)


@torch.no_grad()
def accumulate_activity(
    model: Growable, loader: Iterable[Any], max_batches: int | None = None
) -> InactivityAccumulator:
    """Every hidden unit's accumulated post-ReLU activity on ``loader`` (eval mode, restored after).

    Raises :class:`GrowthError` when the loader holds no sample.
    """
    device = model_device(model)
    acc = InactivityAccumulator(model.num_hidden_layers)
    was_training = model.training
    model.eval()
    try:
        for b, batch in enumerate(loader):
            if max_batches is not None and b >= max_batches:
                break
            x, _, t = unpack(batch, device)
            _, hs = model.run(x, t, capture=True)
            for i, h in enumerate(hs):
                acc.add(i, h, nonnegative=True)
    finally:
        model.train(was_training)
    if acc.samples == 0:
        raise GrowthError("the probe loader is empty: inactivity needs at least one sample")
    return acc
