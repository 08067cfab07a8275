"""The built-in strategies' declarations: names and hyperparameters (neither torch nor Avalanche).

Each declaration points at the builder in :mod:`clgrow.strategies.builders` that makes the
Avalanche strategy from the run's common arguments and these hyperparameters. A third-party
strategy registers the same way (``@clgrow.registry.strategies.register("mine")`` on a builder
``f(*, model, optimizer, ..., plugins, **hyperparameters) -> SupervisedTemplate``, or an entry
point in the group ``clgrow.strategies``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from clgrow.errors import ConfigError
from clgrow.params import Params, param
from clgrow.registry import strategies

__all__ = ["OPTIMIZERS", "reference_strategies", "StrategyParams", "Traits", "traits"]

#: Optimizers a run can name; SGD's momentum defaults to 0.9 when not given.
OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass(frozen=True)
class StrategyParams(Params):
    """Base of a strategy's declaration: its hyperparameters, and its traits, which the run's
    rules read (no rule names a strategy).

    Attributes
    ----------
    reference : bool
        A row that runs without growth, resets or pruning (``joint``, the usual upper bound;
        ``pnn``, Avalanche's progressive columns, growth of another kind with its own model).
    trains_jointly : bool
        Trains once on every experience together (evaluated like the others' last step).
    task_labels : bool or None
        ``True``: needs task labels; ``False``: refuses them; ``None``: either. ``task_labels_why``
        says why, for the refusal.
    own_model : str
        Non-empty when the strategy builds its own model from ``hidden_sizes`` (what it builds):
        it takes model ``mlp`` only.
    one_width : bool
        Its model has one width for every layer (equal ``hidden_sizes``).
    stores_logits : bool
        It keeps logits at their width when stored, so the head must not widen (``grow_head``).
    """

    reference: ClassVar[bool] = False
    trains_jointly: ClassVar[bool] = False
    task_labels: ClassVar[bool | None] = None
    task_labels_why: ClassVar[str] = ""
    own_model: ClassVar[str] = ""
    one_width: ClassVar[bool] = False
    stores_logits: ClassVar[bool] = False


@dataclass(frozen=True)
class Traits:
    """A strategy's traits (:class:`StrategyParams`), for a strategy registered without them too."""

    reference: bool = False
    trains_jointly: bool = False
    task_labels: bool | None = None
    task_labels_why: str = ""
    own_model: str = ""
    one_width: bool = False
    stores_logits: bool = False


def traits(name: str) -> Traits:
    """The traits strategy ``name`` declares (the defaults where it declares none)."""
    declared, default = strategies.params(name), Traits()
    return Traits(**{f.name: getattr(declared, f.name, getattr(default, f.name)) for f in dataclasses.fields(Traits)})


def reference_strategies() -> tuple[str, ...]:
    """Names of the reference strategies (run with growth and plasticity ``none`` only)."""
    return tuple(n for n in strategies if getattr(strategies.params(n), "reference", False))


_B = "clgrow.strategies.builders:"


@strategies.declare("naive", impl=_B + "_naive")
@dataclass(frozen=True)
class NaiveParams(StrategyParams):
    """Fine-tuning on each experience in turn."""


@strategies.declare("replay", impl=_B + "_replay")
@dataclass(frozen=True)
class ReplayParams(StrategyParams):
    """Experience replay from a class-balanced buffer."""

    mem_size: int = param(500, "samples kept in the replay buffer", ge=1)


@strategies.declare("ewc", impl=_B + "_ewc")
@dataclass(frozen=True)
class EWCParams(StrategyParams):
    """Elastic weight consolidation."""

    ewc_lambda: float = param(100.0, "weight of the penalty", ge=0)
    mode: str = param("separate", "one Fisher per experience, or a running one", choices=("separate", "online"))
    decay_factor: float | None = param(None, "decay of the online Fisher (mode online)", ge=0, le=1)

    def check(self) -> None:
        if self.mode == "online" and self.decay_factor is None:
            raise ConfigError("mode 'online' needs decay_factor (a number in [0, 1])")


@strategies.declare("si", impl=_B + "_si")
@dataclass(frozen=True)
class SIParams(StrategyParams):
    """Synaptic intelligence (with this toolkit's CPU fix)."""

    si_lambda: float = param(1.0, "weight of the penalty", ge=0)
    eps: float = param(1e-7, "damping of the importance", gt=0)


@strategies.declare("lwf", impl=_B + "_lwf")
@dataclass(frozen=True)
class LwFParams(StrategyParams):
    """Learning without forgetting."""

    alpha: float = param(1.0, "weight of the distillation loss", ge=0)
    temperature: float = param(2.0, "softmax temperature of the distillation", gt=0)


@strategies.declare("agem", impl=_B + "_agem")
@dataclass(frozen=True)
class AGEMParams(StrategyParams):
    """Averaged gradient episodic memory."""

    patterns_per_exp: int = param(100, "samples kept per experience", ge=1)
    sample_size: int = param(64, "memory samples per reference gradient", ge=1)


@strategies.declare("gem", impl=_B + "_gem")
@dataclass(frozen=True)
class GEMParams(StrategyParams):
    """Gradient episodic memory."""

    patterns_per_exp: int = param(100, "samples kept per experience", ge=1)
    memory_strength: float = param(0.5, "offset added to the projection's solution", ge=0)


@strategies.declare("cumulative", impl=_B + "_cumulative")
@dataclass(frozen=True)
class CumulativeParams(StrategyParams):
    """Training on every experience seen so far."""


@strategies.declare("mas", impl=_B + "_mas")
@dataclass(frozen=True)
class MASParams(StrategyParams):
    """Memory-aware synapses."""

    lambda_reg: float = param(1.0, "weight of the penalty", ge=0)
    alpha: float = param(0.5, "running-average factor of the importance", ge=0, le=1)


@strategies.declare("rwalk", impl=_B + "_rwalk")
@dataclass(frozen=True)
class RWalkParams(StrategyParams):
    """Riemannian walk (task-safe with new heads)."""

    ewc_lambda: float = param(0.1, "weight of the penalty", ge=0)
    ewc_alpha: float = param(0.9, "running-average factor of the Fisher", ge=0, le=1)
    delta_t: int = param(10, "steps between score updates", ge=1)


@strategies.declare("lfl", impl=_B + "_lfl")
@dataclass(frozen=True)
class LFLParams(StrategyParams):
    """Less-forgetful learning (growth-aware)."""

    lambda_e: float = param(1.0, "weight of the feature penalty", ge=0)


@strategies.declare("der", impl=_B + "_der")
@dataclass(frozen=True)
class DERParams(StrategyParams):
    """Dark experience replay (class-incremental)."""

    task_labels: ClassVar[bool | None] = False
    task_labels_why: ClassVar[str] = (
        "it stores logits without task labels, which a model with one head per task does not give"
    )
    stores_logits: ClassVar[bool] = True

    mem_size: int = param(200, "samples kept in the buffer", ge=1)
    batch_size_mem: int | None = param(None, "memory samples per batch (none: the training batch size)", ge=1)
    alpha: float = param(0.1, "weight of the logit loss", ge=0)
    beta: float = param(0.5, "weight of the label loss", ge=0)


@strategies.declare("er-ace", impl=_B + "_er_ace")
@dataclass(frozen=True)
class ERACEParams(StrategyParams):
    """Experience replay with asymmetric cross-entropy."""

    mem_size: int = param(200, "samples kept in the buffer", ge=1)
    batch_size_mem: int = param(10, "memory samples per batch", ge=1)


@strategies.declare("mir", impl=_B + "_mir")
@dataclass(frozen=True)
class MIRParams(StrategyParams):
    """Maximally interfered retrieval."""

    mem_size: int = param(200, "samples kept in the buffer", ge=1)
    subsample: int = param(50, "candidates scored per batch", ge=1)
    batch_size_mem: int = param(10, "memory samples per batch", ge=1)


@strategies.declare("joint", impl=_B + "_joint")
@dataclass(frozen=True)
class JointParams(StrategyParams):
    """Every experience at once (reference: the usual upper bound)."""

    reference: ClassVar[bool] = True
    trains_jointly: ClassVar[bool] = True


@strategies.declare("pnn", impl=_B + "_pnn")
@dataclass(frozen=True)
class PNNParams(StrategyParams):
    """Avalanche's progressive neural networks (reference; task-incremental)."""

    reference: ClassVar[bool] = True
    task_labels: ClassVar[bool | None] = True
    task_labels_why: ClassVar[str] = "it is task-incremental: one column per task"
    own_model: ClassVar[str] = "its own MLP columns (Avalanche's PNN)"
    one_width: ClassVar[bool] = True
