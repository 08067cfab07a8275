"""Intervals over seeds and differences paired by seed, as a reviewer reads a results table.

An interval is Student's t over the seeds: ``mean ± t(0.975, n−1) · s / √n`` with ``s`` the sample
standard deviation (scipy's quantile). A paired difference takes the seeds both rows ran, the
per-seed differences ``row − baseline``, and the same interval over them: the seeds share their
data order and initialisation draws, so pairing removes that shared noise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["LEVEL", "Interval", "interval", "paired_difference"]

#: Confidence level of every interval clgrow prints.
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` seeds with the half-width of its interval (NaN for one seed).

    Attributes
    ----------
    mean, half : float
        The interval is ``[mean − half, mean + half]``.
    n : int
        Seeds (for a paired difference: seeds both rows ran).
    """

    mean: float
    half: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half

    @property
    def high(self) -> float:
        return self.mean + self.half

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies entirely on one side of zero (a difference the seeds support)."""
        return math.isfinite(self.half) and (self.low > 0 or self.high < 0)


def interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Mean and Student-t interval of ``values`` (finite numbers, one per seed)."""
    from scipy import stats

    n = len(values)
    if n == 0:
        return Interval(math.nan, math.nan, 0)
    mean = statistics.fmean(values)
    if n == 1:
        return Interval(mean, math.nan, 1)
    sd = statistics.stdev(values)
    return Interval(mean, float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n), n)


def paired_difference(row: Mapping[int, float], baseline: Mapping[int, float], level: float = LEVEL) -> Interval:
    """``row − baseline`` paired by seed: the interval of the per-seed differences over the seeds
    both have a finite value for."""
    seeds = sorted(
        s for s in set(row) & set(baseline) if math.isfinite(float(row[s])) and math.isfinite(float(baseline[s]))
    )
    return interval([float(row[s]) - float(baseline[s]) for s in seeds], level)
