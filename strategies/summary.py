"""RunSummary: one run's results, typed, built from the metrics' own state and the plugin's events.

Inactivity and widths come from :class:`~clgrow.strategies.InactivityMetric`'s typed history,
growth from :class:`~clgrow.strategies.GrowPlugin`'s events, accuracy and forgetting (Avalanche's
metrics) from the results writer under the names :mod:`clgrow.strategies.names` spells. Tables,
figures, grids and benchmarks read this class; ``summary.json`` is its :meth:`RunSummary.to_dict`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from clgrow.errors import ConfigError
from clgrow.strategies import names
from clgrow.strategies.metrics import InactivityMetric, find_grow_plugin
from clgrow.strategies.plasticity import find_plasticity_plugin
from clgrow.strategies.results import ResultsWriter

__all__ = ["RunSummary"]

Series = list[float | None]  # one value per training experience, None where there is nothing to measure


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def _matches(value: Any, hint: Any) -> bool:
    """Whether plain JSON data ``value`` fits the type ``hint`` (containers checked one level
    deep: a list's items, a dict's values)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    if hint is list or origin is list:
        return isinstance(value, list) and (not args or all(_matches(v, args[0]) for v in value))
    if hint is dict or origin is dict:
        return isinstance(value, dict) and (len(args) < 2 or all(_matches(v, args[1]) for v in value.values()))
    return True


@dataclass
class RunSummary:
    """Results of one run; series are indexed by the training experience they follow.

    ``accuracy_matrix[i][j]`` is the accuracy on test experience ``j`` after training experience
    ``i``; ``learning_accuracy`` is the mean of its diagonal (how well each experience is learned
    right after training on it: plasticity, next to forgetting). Fractions are of hidden units
    (``new_*``: of the units added by growth, ``cohort_*``: of the units added at one experience,
    keyed ``cohort_initial`` / ``cohort_exp{e}``; ``reset_*``: of the units last reset by the
    ``plasticity`` method during one experience, keyed ``reset_exp{e}``); ``units_reset`` counts
    the resets of each experience. ``growth_disruption[i]`` is the accuracy the growth steps of
    training experience ``i`` cost on the experiences seen before it (mean over them, right before
    against right after each step, on the plugin's fixed probes; ``None`` where nothing grew or
    nothing was seen before), ``growth_disruption_kl[i]`` the mean output KL divergence (nats).
    ``train_loss[i]`` holds the mean training loss of each epoch of experience ``i``.
    ``collapsed`` flags a run that finished but learned nothing usable (:meth:`is_collapsed`).
    """

    benchmark: str
    strategy: str
    growth: str
    seed: int
    n_experiences: int
    final_accuracy: float | None
    average_forgetting: float | None
    stream_accuracy: Series
    forgetting: Series
    accuracy_matrix: list[Series]
    dead_fraction: Series
    dormant_fraction: Series
    new_dead_fraction: Series
    new_dormant_fraction: Series
    cohort_dormant: dict[str, Series]
    cohort_dead: dict[str, Series]
    hidden_sizes: list[list[int]]
    final_hidden_sizes: list[int]
    parameters: int
    train_seconds: float
    growth_seconds: float
    epoch_seconds_median: float | None
    growth_events: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    plasticity: str = "none"
    learning_accuracy: float | None = None
    units_reset: Series = field(default_factory=list)
    reset_dormant: dict[str, Series] = field(default_factory=dict)
    reset_dead: dict[str, Series] = field(default_factory=dict)
    growth_disruption: Series = field(default_factory=list)
    growth_disruption_kl: Series = field(default_factory=list)
    train_loss: list[Series] = field(default_factory=list)
    collapsed: bool = False
    #: Multiply-adds by phase (``train_macs``, ``eval_macs``, ``growth_macs``, ``probe_macs``) and
    #: ``param_samples`` (:mod:`clgrow.measure.compute`); empty when the strategy had no ComputePlugin.
    compute: dict[str, int] = field(default_factory=dict)
    #: Epochs trained per experience (a compute-matched fixed run trains more than its config's).
    train_epochs: int | None = None
    #: Units pruned at the start of each training experience (empty without a PrunePlugin).
    units_pruned: list[int] = field(default_factory=list)
    #: How units were pruned (``none``, ``drop``, ``swe``).
    prune: str = "none"
    #: Accuracy the prune at the start of each experience cost on the experiences seen before it
    #: (right before against right after, on held-out probes; ``None`` where nothing was pruned).
    prune_disruption: Series = field(default_factory=list)

    @property
    def growth_share(self) -> float | None:
        """Growth's multiply-adds over training's and growth's together (``None``: not counted)."""
        if not self.compute:
            return None
        train, grown = self.compute.get("train_macs", 0), self.compute.get("growth_macs", 0)
        return grown / (train + grown) if train + grown else None

    @property
    def method(self) -> str:
        """The growth setting, with the plasticity and prune methods when there are (a table row, a figure's line)."""
        extras = [
            v for v in (self.plasticity, "" if self.prune == "none" else f"prune {self.prune}") if v != "none" and v
        ]
        return " / ".join([self.growth, *extras])

    @property
    def mean_prune_disruption(self) -> float | None:
        """Mean of :attr:`prune_disruption` over the experiences that have one (``None``: none)."""
        vals = [v for v in self.prune_disruption if v is not None]
        return sum(vals) / len(vals) if vals else None

    @staticmethod
    def is_collapsed(
        final_accuracy: float | None,
        chance: float | None,
        dead_fraction: float | None,
        train_loss: Sequence[Sequence[float | None]],
    ) -> bool:
        """A collapsed run: accuracy at chance level (within 1 point) with every hidden unit dead,
        or a training loss that never decreased within an experience (every experience trained
        for two epochs or more ends it no lower than it started)."""
        dead_at_chance = (
            final_accuracy is not None
            and chance is not None
            and dead_fraction is not None
            and final_accuracy <= chance + 0.01
            and dead_fraction >= 1.0
        )
        judged = [[v for v in e if v is not None] for e in train_loss]
        judged = [e for e in judged if len(e) >= 2 and all(math.isfinite(v) for v in e)]
        stuck = bool(judged) and all(e[-1] >= e[0] for e in judged)
        return dead_at_chance or stuck

    @property
    def mean_growth_disruption(self) -> float | None:
        """Mean of :attr:`growth_disruption` over the experiences that have one (``None``: none)."""
        vals = [v for v in self.growth_disruption if v is not None]
        return sum(vals) / len(vals) if vals else None

    @staticmethod
    def diagonal(matrix: Sequence[Sequence[float | None]]) -> list[float | None]:
        """``matrix[i][i]``: the accuracy on each experience right after training on it (``None``
        where it was not evaluated then)."""
        return [row[i] if i < len(row) else None for i, row in enumerate(matrix)]

    @classmethod
    def diagonal_mean(cls, matrix: Sequence[Sequence[float | None]]) -> float | None:
        """Mean of :meth:`diagonal` (``None`` unless every experience was evaluated right after training)."""
        diag = cls.diagonal(matrix)
        vals = [v for v in diag if v is not None]
        return None if not diag or len(vals) < len(diag) else sum(vals) / len(vals)

    @classmethod
    def collect(
        cls,
        strategy: Any,
        writer: ResultsWriter,
        *,
        task_labels: Sequence[int],
        benchmark: str,
        strategy_name: str,
        growth: str,
        seed: int,
        train_seconds: float = 0.0,
        epoch_seconds: Sequence[float] = (),
        versions: dict[str, str] | None = None,
        config: dict[str, Any] | None = None,
        device: str = "cpu",
        plasticity: str = "none",
        prune: str = "none",
    ) -> RunSummary:
        """Gather a summary from a strategy that trained and evaluated on the test stream.

        Parameters
        ----------
        strategy : avalanche strategy
            Its evaluator must hold an :class:`InactivityMetric`; its model one with growth sites.
        writer : ResultsWriter
            The logger that recorded Avalanche's accuracy and forgetting.
        task_labels : sequence of int
            Task label of each test experience (all 0 without task labels).
        """
        from clgrow.strategies.compute import find_compute_plugin

        counted = find_compute_plugin(strategy)
        from clgrow.strategies.prune_plugin import find_prune_plugin

        pruner = find_prune_plugin(strategy)
        n = len(task_labels)
        inactivity = next((m for m in strategy.evaluator.metrics if isinstance(m, InactivityMetric)), None)
        if inactivity is None:
            raise ConfigError("RunSummary.collect needs an InactivityMetric among the evaluator's metrics")
        model = strategy.model
        per_exp: dict[int, Any] = {i: inactivity.history.get(i, {}).get("test") for i in range(n)}

        def stat(attr: str) -> Series:
            return [None if per_exp[i] is None else getattr(per_exp[i][0], attr) for i in range(n)]

        def by_group(fractions: dict[str, dict[int, tuple[float, float]]], which: int) -> dict[str, Series]:
            """``{group: series}`` of the dead (0) or dormant (1) fraction, per experience."""
            return {c: [v.get(i, (None, None))[which] for i in range(n)] for c, v in sorted(fractions.items())}

        cohorts: dict[str, dict[int, tuple[float, float]]] = {}
        for i, entry in per_exp.items():
            if entry is not None:
                stats, cohort_experience = entry
                for e, fr in stats.cohort_fractions(cohort_experience).items():
                    cohorts.setdefault(names.cohort_tag(e), {})[i] = fr
        accuracy = [[writer.series(names.accuracy_exp(j, task_labels[j])).get(i) for j in range(n)] for i in range(n)]
        resets = find_plasticity_plugin(strategy)
        by_reset: dict[str, dict[int, tuple[float, float]]] = {}
        for i in range(n):
            for e, fr in inactivity.reset_history.get(i, {}).get("test", {}).items():
                by_reset.setdefault(names.reset_tag(e), {})[i] = fr
        stream_rows = [writer.series(names.accuracy_stream(t)) for t in sorted(set(task_labels))]
        stream_acc = []
        for i in range(n):  # tasks seen so far weigh equally (one value per task label)
            vals = [r[i] for r in stream_rows if i in r]
            stream_acc.append(sum(vals) / len(vals) if vals else None)
        forgetting = writer.series(names.stream_forgetting())
        plugin = find_grow_plugin(strategy)
        events = plugin.events if plugin is not None else []
        epochs = sorted(epoch_seconds)
        losses = writer.values(names.train_name(names.TRAIN_LOSS))
        train_loss: list[Series] = [list(losses.get(i, [])) for i in range(n)]
        dead = stat("dead_fraction")
        outputs = getattr(model, "num_classes", None)
        chance = 1.0 / outputs if isinstance(outputs, int) and outputs > 0 else None

        def per_experience(attr: str) -> Series:
            out: Series = []
            for i in range(n):
                vals = [getattr(e, attr) for e in events if e.experience == i and e.disruption]
                out.append(sum(vals) / len(vals) if vals else None)
            return out

        # the last row evaluated (joint training evaluates once, after all experiences together)
        last = max((i for i in range(n) if stream_acc[i] is not None), default=n - 1)
        return cls(
            benchmark=benchmark,
            strategy=strategy_name,
            growth=growth,
            seed=seed,
            n_experiences=n,
            final_accuracy=stream_acc[last] if n else None,
            average_forgetting=forgetting.get(last, 0.0),
            stream_accuracy=stream_acc,
            forgetting=[forgetting.get(i, 0.0 if i == 0 else None) for i in range(n)],
            accuracy_matrix=accuracy,
            dead_fraction=stat("dead_fraction"),
            dormant_fraction=stat("dormant_fraction"),
            new_dead_fraction=stat("new_dead_fraction"),
            new_dormant_fraction=stat("new_dormant_fraction"),
            cohort_dormant=by_group(cohorts, 1),
            cohort_dead=by_group(cohorts, 0),
            hidden_sizes=[
                [] if per_exp[i] is None else [layer.units for layer in per_exp[i][0].layers] for i in range(n)
            ],
            final_hidden_sizes=_site_widths(model),
            parameters=sum(p.numel() for p in model.parameters()),
            train_seconds=train_seconds,
            growth_seconds=sum(e.report.seconds["total"] for e in events),
            epoch_seconds_median=epochs[len(epochs) // 2] if epochs else None,
            # allocation keys as JSON writes them, so a fresh summary equals one read back
            growth_events=[
                {**e.to_dict(), "allocation": {str(k): v for k, v in e.report.allocation.items()}} for e in events
            ],
            versions=dict(versions or {}),
            config=dict(config or {}),
            device=device,
            plasticity=plasticity,
            learning_accuracy=cls.diagonal_mean(accuracy),
            units_reset=[] if resets is None else [resets.units_reset(i) for i in range(n)],
            reset_dormant=by_group(by_reset, 1),
            reset_dead=by_group(by_reset, 0),
            growth_disruption=per_experience("disruption_drop"),
            growth_disruption_kl=per_experience("disruption_kl"),
            train_loss=train_loss,
            collapsed=cls.is_collapsed(
                stream_acc[last] if n else None,
                chance,
                next((v for v in reversed(dead) if v is not None), None),
                train_loss,
            ),
            compute={} if counted is None else counted.counter.to_dict(),
            units_pruned=[] if pruner is None else [pruner.units_pruned(i) for i in range(n)],
            prune=prune,
            prune_disruption=[] if pruner is None else [pruner.disruption(i) for i in range(n)],
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (non-finite numbers become ``null``)."""
        return _finite(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "summary") -> RunSummary:
        """Read :meth:`to_dict`'s output, naming any missing field."""
        fields = dataclasses.fields(cls)
        required = [
            f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [k for k in required if k not in data]
        if missing:
            raise ConfigError(f"{where}: not a clgrow run summary (missing {', '.join(missing)})")
        hints = typing.get_type_hints(cls)
        for f in fields:
            if f.name in data and not _matches(data[f.name], hints[f.name]):
                raise ConfigError(
                    f"{where}: field {f.name} has the wrong type (expected {hints[f.name]}, "
                    f"got {type(data[f.name]).__name__} {data[f.name]!r:.60})"
                )
        summary = cls(**{f.name: data[f.name] for f in fields if f.name in data})
        if "learning_accuracy" not in data:  # written before the field existed
            summary.learning_accuracy = cls.diagonal_mean(summary.accuracy_matrix)
        return summary

    def last(self, series: str) -> float:
        """The last measured value of a per-experience series (``nan`` if none)."""
        for v in reversed(getattr(self, series) or []):
            if v is not None:
                return float(v)
        return math.nan


def _site_widths(model: Any) -> list[int]:
    """Widths of the model's growth sites (a module clgrow did not build: from its last trace)."""
    from clgrow.sites import as_growable, known_sites

    if hasattr(model, "hidden_sizes"):
        return list(model.hidden_sizes)
    found = known_sites(model)
    return list(as_growable(model).hidden_sizes) if found is not None and found.sites else []
