"""Avalanche metrics for neuron inactivity and growth, shown by every logger.

Names follow Avalanche's convention ``{Metric}/{phase}_phase/{stream}_stream[/...]``:

* ``NeuronDead``, ``NeuronDormant`` (fractions over all hidden units of the evaluated
  stream), with ``/layer{i}`` per hidden layer and ``/cohort_exp{e}`` for the units added at
  training experience ``e`` (``cohort_initial``: the units the model started with);
* ``NewNeuronDead``, ``NewNeuronDormant`` over all units added by growth;
* ``NeuronDead``/``NeuronDormant`` ``/reset_exp{e}`` for the units last reset (ReDo, CBP) during
  training experience ``e``, and ``UnitsReset`` (``/layer{i}``) after each training experience;
* ``HiddenSizes/.../layer{i}`` after each training experience, ``GrowthAllocation/.../layer{i}``
  and ``GrowthTime`` (seconds, ``/distributor`` and ``/extender``) after each experience that grew;
  ``GrowthDisruption`` (accuracy drop on the experiences seen before, right before against right
  after the step, as a fraction; ``/exp{j}`` per probed experience) and ``GrowthDisruptionKL``
  (mean output KL divergence, nats) after each experience whose growth had old experiences to probe.

Inactivity is collected from the strategy's own evaluation forward passes (the model's
activation observers): no extra pass over the data.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue

from clgrow.measure.inactivity import InactivityAccumulator, InactivityStats
from clgrow.sites import known_sites
from clgrow.strategies import names
from clgrow.strategies.growable import growable_model
from clgrow.strategies.plasticity import find_plasticity_plugin
from clgrow.strategies.plugin import GrowPlugin

__all__ = [
    "InactivityMetric",
    "GrowthMetric",
    "TrainingLoss",
    "inactivity_metrics",
    "growth_metrics",
    "find_grow_plugin",
]


def find_grow_plugin(strategy: Any) -> GrowPlugin | None:
    """The strategy's GrowPlugin, if any (looked up each time: checkpoints replace plugins)."""
    for p in getattr(strategy, "plugins", []):
        if isinstance(p, GrowPlugin):
            return p
    return None


def _stream_name(strategy: Any) -> str:
    exp = strategy.experience
    stream = getattr(exp, "origin_stream", None)
    return getattr(stream, "name", "test")


class InactivityMetric(PluginMetric[float]):
    """Dead and τ-dormant fractions of hidden units on each evaluated stream.

    Parameters
    ----------
    tau : float
        Dormancy threshold (0.025 by default; 0 makes dormant equal dead).
    per_layer, per_cohort : bool
        Also emit one value per hidden layer / per growth cohort.
    """

    def __init__(self, tau: float = 0.025, per_layer: bool = True, per_cohort: bool = True) -> None:
        super().__init__()
        if tau < 0 or not math.isfinite(tau):
            raise ValueError(f"tau must be a finite number >= 0, got {tau}")
        self.tau = float(tau)
        self.per_layer = per_layer
        self.per_cohort = per_cohort
        self._acc: dict[str, InactivityAccumulator] = {}
        self._handles: list[Any] = []
        self._model: Any = None  # the evaluated model as clgrow measures it, during one evaluation
        self._stream = "test"
        self.last: dict[str, InactivityStats] = {}
        #: ``{training experience: {stream: (stats, cohort -> experience)}}`` after each evaluation
        self.history: dict[int, dict[str, tuple[InactivityStats, dict[int, int]]]] = {}
        #: ``{training experience: {stream: {reset experience: (dead, dormant fraction)}}}``
        self.reset_history: dict[int, dict[str, dict[int, tuple[float, float]]]] = {}

    def reset(self) -> None:
        """Forget accumulated activations."""
        self._acc = {}

    def result(self) -> dict[str, InactivityStats]:
        """The last stats per stream name."""
        return self.last

    def _observe(self, layer: int, h: torch.Tensor) -> None:
        acc = self._acc.get(self._stream)
        if acc is not None:
            acc.add(layer, h, nonnegative=True)

    def before_eval(self, strategy: Any) -> None:
        """Observe the hidden layers' activations for the whole evaluation call."""
        self.reset()
        self._stop_observing()
        self._model = growable_model(strategy) if known_sites(strategy.model) else None
        if self._model is not None:
            self._handles = [self._model.observe_activations(self._observe)]

    def before_eval_exp(self, strategy: Any) -> None:
        """Route activations to the stream being evaluated."""
        self._stream = _stream_name(strategy)
        if self._model is None:  # a module never traced yet: its sites from this experience's samples
            self._model = growable_model(strategy)
            if self._model is not None:
                self._handles = [self._model.observe_activations(self._observe)]
        if self._model is not None and self._stream not in self._acc:
            self._acc[self._stream] = InactivityAccumulator(self._model.num_hidden_layers)

    def after_eval(self, strategy: Any) -> list[MetricValue]:
        """Emit fractions per stream, layer and cohort."""
        self._stop_observing()
        model, self._model = self._model, None
        if model is None:
            return []
        plugin = find_grow_plugin(strategy)
        cohort_exp = plugin.cohort_experience if plugin is not None else {0: -1}
        resets = find_plasticity_plugin(strategy)
        # reset units are followed like a cohort: label e + 1 for "last reset in experience e", 0 for never
        reset_labels = None if resets is None else [lab + 1 for lab in resets.reset_labels(model)]
        values: list[MetricValue] = []
        x = strategy.clock.train_iterations
        for stream, acc in self._acc.items():
            if not acc.complete:
                continue
            stats = acc.stats([model.cohort(i) for i in range(model.num_hidden_layers)], self.tau)
            self.last[stream] = stats
            after = int(strategy.clock.train_exp_counter) - 1
            self.history.setdefault(after, {})[stream] = (stats, dict(cohort_exp))

            def emit(metric: str, value: float, tag: str | None = None, stream: str = stream) -> None:
                if not math.isnan(value):
                    values.append(MetricValue(self, names.eval_name(metric, stream, tag), float(value), x))

            emit(names.DEAD, stats.dead_fraction)
            emit(names.DORMANT, stats.dormant_fraction)
            emit(names.NEW_DEAD, stats.new_dead_fraction)
            emit(names.NEW_DORMANT, stats.new_dormant_fraction)
            if self.per_layer:
                for i, layer in enumerate(stats.layers):
                    emit(names.DEAD, layer.dead / layer.units, names.layer_tag(i))
                    emit(names.DORMANT, layer.dormant / layer.units, names.layer_tag(i))
            if self.per_cohort:
                for e, (dead, dormant) in stats.cohort_fractions(cohort_exp).items():
                    emit(names.DEAD, dead, names.cohort_tag(e))
                    emit(names.DORMANT, dormant, names.cohort_tag(e))
            if reset_labels is not None:
                by_reset = {
                    c - 1: fr for c, fr in acc.stats(reset_labels, self.tau).cohort_fractions().items() if c > 0
                }
                self.reset_history.setdefault(after, {})[stream] = by_reset
                for e, (dead, dormant) in by_reset.items():
                    emit(names.DEAD, dead, names.reset_tag(e))
                    emit(names.DORMANT, dormant, names.reset_tag(e))
        return values

    def _stop_observing(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = []  # observer handles do not survive pickling (checkpoints)
        state["_model"] = None
        state["_acc"] = {}
        return state

    def __str__(self) -> str:
        return "NeuronInactivity"


class GrowthMetric(PluginMetric[dict]):
    """Hidden sizes after each training experience; allocation and time of its growth steps;
    units reset in it (with a PlasticityPlugin)."""

    def __init__(self) -> None:
        super().__init__()
        self._seen = 0

    def reset(self) -> None:
        """Nothing to reset between experiences."""

    def result(self) -> dict:
        """Empty: values are emitted directly."""
        return {}

    def after_training_exp(self, strategy: Any) -> list[MetricValue]:
        """Emit widths, and the allocation and seconds of the steps taken in this experience."""
        model = growable_model(strategy)
        if model is None:
            return []
        x = strategy.clock.train_iterations
        values = [
            MetricValue(self, names.train_name(names.HIDDEN_SIZES, names.layer_tag(i)), float(n), x)
            for i, n in enumerate(model.hidden_sizes)
        ]
        values.append(MetricValue(self, names.train_name(names.HIDDEN_UNITS), float(sum(model.hidden_sizes)), x))
        resets = find_plasticity_plugin(strategy)
        if resets is not None:
            exp = int(strategy.clock.train_exp_counter)  # the clock moves on after every plugin
            counts = resets.counts.get(exp, {})
            values.append(MetricValue(self, names.train_name(names.UNITS_RESET), float(resets.units_reset(exp)), x))
            for i in range(model.num_hidden_layers):
                values.append(
                    MetricValue(
                        self, names.train_name(names.UNITS_RESET, names.layer_tag(i)), float(counts.get(i, 0)), x
                    )
                )
        from clgrow.strategies.prune_plugin import find_prune_plugin

        pruner = find_prune_plugin(strategy)
        if pruner is not None:  # units removed at the start of the experience just trained
            exp = int(strategy.clock.train_exp_counter)
            removed: dict[int, int] = {}
            for event in pruner.events:
                if event.experience == exp:
                    for i, idx in event.report.removed.items():
                        removed[i] = removed.get(i, 0) + int(idx.numel())
            values.append(MetricValue(self, names.train_name(names.UNITS_PRUNED), float(sum(removed.values())), x))
            drop = pruner.disruption(exp)
            if drop is not None:
                values.append(MetricValue(self, names.train_name(names.PRUNE_DISRUPTION), drop, x))
                for event in (e for e in pruner.events if e.experience == exp):
                    for c in event.disruption:
                        tag = names.experience_tag(c.experience)
                        values.append(MetricValue(self, names.train_name(names.PRUNE_DISRUPTION, tag), c.drop, x))
            for i in range(model.num_hidden_layers):
                values.append(
                    MetricValue(
                        self, names.train_name(names.UNITS_PRUNED, names.layer_tag(i)), float(removed.get(i, 0)), x
                    )
                )
        plugin = find_grow_plugin(strategy)
        if plugin is None:
            return values
        new_events = plugin.events[self._seen :]
        self._seen = len(plugin.events)
        if new_events:
            alloc: dict[int, int] = {}
            secs = {"distributor": 0.0, "extender": 0.0}
            for ev in new_events:
                for i, v in ev.report.allocation.items():
                    alloc[i] = alloc.get(i, 0) + v
                for key in secs:
                    secs[key] += ev.report.seconds[key]
            for i, v in sorted(alloc.items()):
                values.append(
                    MetricValue(self, names.train_name(names.GROWTH_ALLOCATION, names.layer_tag(i)), float(v), x)
                )
            values.append(
                MetricValue(self, names.train_name(names.GROWTH_TIME), secs["distributor"] + secs["extender"], x)
            )
            for key, seconds in secs.items():
                values.append(MetricValue(self, names.train_name(names.GROWTH_TIME, key), seconds, x))
            probed = [ev for ev in new_events if ev.disruption]
            if probed:
                drops = [d for d in (ev.disruption_drop for ev in probed) if d is not None]
                kls = [d for d in (ev.disruption_kl for ev in probed) if d is not None]
                values.append(MetricValue(self, names.train_name(names.GROWTH_DISRUPTION), sum(drops) / len(drops), x))
                values.append(MetricValue(self, names.train_name(names.GROWTH_DISRUPTION_KL), sum(kls) / len(kls), x))
                for c in probed[-1].disruption:
                    tag = names.experience_tag(c.experience)
                    values.append(MetricValue(self, names.train_name(names.GROWTH_DISRUPTION, tag), c.drop, x))
                    values.append(MetricValue(self, names.train_name(names.GROWTH_DISRUPTION_KL, tag), c.kl, x))
        return values

    def __str__(self) -> str:
        return "Growth"


class _LossSum(SupervisedPlugin):
    """Sums the strategy's loss over an epoch's batches, on the loss's device (read once per
    epoch). A strategy plugin, so each iteration costs one addition, not a pass through the
    evaluation plugin's per-callback machinery."""

    def __init__(self) -> None:
        super().__init__()
        self.sum: torch.Tensor | None = None
        self.batches = 0

    def before_training_epoch(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.sum, self.batches = None, 0

    def after_training_iteration(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        loss = getattr(strategy, "loss", None)
        if isinstance(loss, torch.Tensor):
            value = loss.detach().float()
            self.sum = value if self.sum is None else self.sum + value
            self.batches += 1


class TrainingLoss(PluginMetric[float]):
    """The strategy's training loss (its criterion with every plugin's penalty), averaged over
    the batches of each epoch and emitted as ``TrainLoss/train_phase/train_stream`` after it.

    The per-batch sum is kept by a small strategy plugin that this metric attaches to the
    strategy when training starts (see :class:`_LossSum`).
    """

    def __init__(self) -> None:
        super().__init__()
        self._acc = _LossSum()

    def reset(self) -> None:
        """Nothing to reset: the sum restarts with every epoch."""

    def result(self) -> float:
        """The mean loss of the epoch so far (``nan`` before any batch)."""
        acc = self._acc
        return math.nan if acc.sum is None else float(acc.sum) / max(acc.batches, 1)

    def before_training(self, strategy: Any) -> None:
        if not any(p is self._acc for p in strategy.plugins):
            strategy.plugins.append(self._acc)

    def after_training_epoch(self, strategy: Any) -> list[MetricValue]:
        if self._acc.sum is None:
            return []
        return [MetricValue(self, names.train_name(names.TRAIN_LOSS), self.result(), strategy.clock.train_iterations)]

    def __str__(self) -> str:
        return names.TRAIN_LOSS


def inactivity_metrics(tau: float = 0.025, per_layer: bool = True, per_cohort: bool = True) -> list[PluginMetric]:
    """Metrics for an ``EvaluationPlugin``: dead/dormant fractions (all, new, per layer, per cohort)."""
    return [InactivityMetric(tau, per_layer, per_cohort)]


def growth_metrics() -> list[PluginMetric]:
    """Metrics for an ``EvaluationPlugin``: hidden sizes, growth allocation and time, growth
    disruption, and the training loss per epoch (what a collapsed run is told by)."""
    return [GrowthMetric(), TrainingLoss()]
