"""Every metric name the toolkit writes or reads, spelled once.

Producers (the metrics in :mod:`clgrow.strategies.metrics`) and consumers (the run summary,
tables, benchmarks) both call these functions, so a name never has to be parsed back. Names
follow Avalanche's convention ``{Metric}/{phase}_phase/{stream}_stream[/Task{t}][/Exp{e}][/tag]``;
Avalanche's own accuracy and forgetting names are spelled with Avalanche's own template.
"""

from __future__ import annotations

from avalanche.evaluation.metric_utils import default_metric_name_template, generic_get_metric_name

__all__ = [
    "DEAD",
    "DORMANT",
    "NEW_DEAD",
    "NEW_DORMANT",
    "HIDDEN_SIZES",
    "HIDDEN_UNITS",
    "GROWTH_ALLOCATION",
    "GROWTH_TIME",
    "TRAIN_LOSS",
    "GROWTH_DISRUPTION",
    "GROWTH_DISRUPTION_KL",
    "UNITS_RESET",
    "UNITS_PRUNED",
    "PRUNE_DISRUPTION",
    "experience_tag",
    "eval_name",
    "train_name",
    "layer_tag",
    "cohort_tag",
    "reset_tag",
    "accuracy_exp",
    "accuracy_stream",
    "stream_forgetting",
]

DEAD = "NeuronDead"
DORMANT = "NeuronDormant"
NEW_DEAD = "NewNeuronDead"
NEW_DORMANT = "NewNeuronDormant"
HIDDEN_SIZES = "HiddenSizes"
HIDDEN_UNITS = "HiddenUnits"
GROWTH_ALLOCATION = "GrowthAllocation"
GROWTH_TIME = "GrowthTime"
#: Mean training loss over the batches of one epoch (the strategy's loss, penalties included).
TRAIN_LOSS = "TrainLoss"
#: Accuracy drop (fraction) on the experiences seen so far, from right before to right after a growth step.
GROWTH_DISRUPTION = "GrowthDisruption"
#: Mean KL divergence (nats) of the outputs on those experiences, before against after the step.
GROWTH_DISRUPTION_KL = "GrowthDisruptionKL"
UNITS_RESET = "UnitsReset"
UNITS_PRUNED = "UnitsPruned"
#: Accuracy drop (fraction) on the experiences seen so far, from right before to right after a prune
#: (on held-out probes); per experience with ``/exp{e}``.
PRUNE_DISRUPTION = "PruneDisruption"


def eval_name(metric: str, stream: str = "test", tag: str | None = None) -> str:
    """``{metric}/eval_phase/{stream}_stream[/tag]``."""
    return f"{metric}/eval_phase/{stream}_stream" + ("" if tag is None else f"/{tag}")


def train_name(metric: str, tag: str | None = None) -> str:
    """``{metric}/train_phase/train_stream[/tag]``."""
    return f"{metric}/train_phase/train_stream" + ("" if tag is None else f"/{tag}")


def layer_tag(layer: int) -> str:
    """Tag of one hidden layer."""
    return f"layer{layer}"


def cohort_tag(experience: int) -> str:
    """Tag of the units added at training experience ``experience`` (``< 0``: the initial units)."""
    return "cohort_initial" if experience < 0 else f"cohort_exp{experience}"


def experience_tag(experience: int) -> str:
    """Tag of one probed training experience."""
    return f"exp{experience}"


def reset_tag(experience: int) -> str:
    """Tag of the units last reset (ReDo, CBP) during training experience ``experience``."""
    return f"reset_exp{experience}"


def _avalanche(metric: str, stream: str, task: int | None = None, experience: int | None = None) -> str:
    return generic_get_metric_name(
        default_metric_name_template,
        {
            "metric_name": metric,
            "task_label": task,
            "phase_name": "eval",
            "experience_id": experience,
            "stream_name": stream,
        },
    )


def accuracy_exp(experience: int, task: int = 0, stream: str = "test") -> str:
    """Avalanche's accuracy on one evaluated experience."""
    return _avalanche("Top1_Acc_Exp", stream, task, experience)


def accuracy_stream(task: int = 0, stream: str = "test") -> str:
    """Avalanche's accuracy over a stream, for one task label."""
    return _avalanche("Top1_Acc_Stream", stream, task)


def stream_forgetting(stream: str = "test") -> str:
    """Avalanche's average forgetting over the experiences seen."""
    return _avalanche("StreamForgetting", stream)
