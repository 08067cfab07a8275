"""GrowPlugin: grow the model's hidden layers at every new experience of an Avalanche stream."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from torch import nn

from clgrow import Distributor, Extender, GrowableMLP, GrowthError, GrowthReport, distributors, extenders, grow
from clgrow.grow import room_under_cap
from clgrow.strategies.compat import (
    carry_optimizer_state,
    fix_regularizer_state,
    make_optimizers_checkpointable,
    optimizer_state_by_name,
)

__all__ = ["GrowPlugin", "GrowthEvent"]


@dataclass
class GrowthEvent:
    """One growth step taken by the plugin."""

    experience: int
    epoch: int
    report: GrowthReport


class GrowPlugin(SupervisedPlugin):
    """Grow a :class:`~clgrow.GrowableMLP` while an Avalanche strategy trains.

    At the start of training on experience ``e >= grow_from_experience`` (and, with
    ``grow_every_epochs=n``, every ``n`` epochs within an experience) the plugin calls
    :func:`clgrow.grow` on the data the strategy trains on (its current dataloader, so replay
    samples are included), then brings the optimizer and the regularisers up to date.

    Parameters
    ----------
    neurons_per_experience : int or callable
        Units added per growth step, or ``f(experience_index) -> int``.
    extender, distributor : object or registry name
        How units are initialised and where they go (``"swe"``, ``"svod"``, ...).
    grow_from_experience : int
        First experience (0-based) at whose start the model grows.
    max_hidden_size : int, optional
        Cap on the width of every hidden layer; growth stops at the cap.
    grow_every_epochs : int, optional
        Also grow after every ``n`` epochs inside any experience (the paper's own staged
        setting: one experience, growth stages every ``n`` epochs).
    layers : sequence of int, optional
        Hidden layers allowed to grow (default: all).
    grow_head : bool
        Add head outputs when an experience brings labels beyond the head's size
        (class-incremental streams with a head sized for the first classes only).
    carry_optimizer_state : bool
        Keep the optimizer state of old entries of grown tensors (zero-padded), instead of
        Avalanche's reset.
    loss_fn : callable, optional
        Loss used for growth (default: the strategy's criterion).
    """

    def __init__(
        self,
        neurons_per_experience: int | Callable[[int], int] = 32,
        extender: Extender | str = "swe",
        distributor: Distributor | str = "svod",
        grow_from_experience: int = 1,
        max_hidden_size: int | None = None,
        grow_every_epochs: int | None = None,
        layers: Sequence[int] | None = None,
        grow_head: bool = False,
        carry_optimizer_state: bool = True,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        # A grown strategy should survive Avalanche's checkpoints; dill needs torch.optim's
        # submodules back on the package to pickle the optimizer (see compat).
        make_optimizers_checkpointable()
        if not callable(neurons_per_experience):
            if isinstance(neurons_per_experience, bool) or int(neurons_per_experience) != neurons_per_experience:
                raise GrowthError(f"neurons_per_experience must be an int or a callable, got {neurons_per_experience!r}")
            if neurons_per_experience < 0:
                raise GrowthError(f"neurons_per_experience must be >= 0, got {neurons_per_experience}")
        if grow_from_experience < 0:
            raise GrowthError(f"grow_from_experience must be >= 0, got {grow_from_experience}")
        if max_hidden_size is not None and max_hidden_size < 1:
            raise GrowthError(f"max_hidden_size must be >= 1 or None, got {max_hidden_size}")
        if grow_every_epochs is not None and grow_every_epochs < 1:
            raise GrowthError(f"grow_every_epochs must be >= 1 or None, got {grow_every_epochs}")
        try:
            self.extender = extenders.build(extender)
            self.distributor = distributors.build(distributor)
        except KeyError as err:
            raise GrowthError(str(err.args[0])) from None
        self.neurons_per_experience = neurons_per_experience
        self.grow_from_experience = int(grow_from_experience)
        self.max_hidden_size = max_hidden_size
        self.grow_every_epochs = grow_every_epochs
        self.layers = None if layers is None else list(layers)
        self.grow_head = grow_head
        self.carry_optimizer_state = carry_optimizer_state
        self.loss_fn = loss_fn
        self.events: list[GrowthEvent] = []
        self.cohort_experience: dict[int, int] = {0: -1}

    # ------------------------------------------------------------------ API
    def units_for(self, experience: int) -> int:
        """Units to add at ``experience`` (before the ``max_hidden_size`` cap)."""
        k = self.neurons_per_experience
        value = k(experience) if callable(k) else k
        if isinstance(value, bool) or int(value) != value or value < 0:
            raise GrowthError(f"neurons_per_experience({experience}) returned {value!r}; need an int >= 0")
        return int(value)

    @staticmethod
    def check_model(model: nn.Module) -> GrowableMLP:
        """Return ``model`` if the plugin can grow it, else raise a clear ``GrowthError``."""
        if not isinstance(model, GrowableMLP):
            raise GrowthError(
                f"GrowPlugin needs a clgrow.GrowableMLP model (ReLU hidden layers that can grow), got "
                f"{type(model).__name__}; build one with GrowableMLP(...) or GrowableMLP.from_sequential(...)"
            )
        return model

    # ------------------------------------------------------------ callbacks
    def before_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """Fail at the start of training, not inside the first growth step."""
        model = self.check_model(strategy.model)
        if getattr(strategy, "optimized_param_id", False) is None:
            # Let Avalanche map parameter names to optimizer entries before anything grows:
            # a tensor replaced before that first mapping would stay in the optimizer as a stale copy.
            strategy.make_optimizer(reset_optimizer_state=True)
        if self.layers is not None:
            bad = [i for i in self.layers if not 0 <= i < model.num_hidden_layers]
            if bad:
                raise GrowthError(f"GrowPlugin layers {bad} do not exist: the model has layers 0..{model.num_hidden_layers - 1}")

    def after_train_dataset_adaptation(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """Grow the head for new classes before the strategy builds its optimizer."""
        if self.grow_head:
            self._fit_head(strategy.model, strategy.experience)

    def before_eval_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """Evaluation on classes not yet trained needs outputs for them too."""
        if self.grow_head and isinstance(strategy.model, GrowableMLP):
            self._fit_head(strategy.model, strategy.experience)

    def before_training_epoch(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """Grow (only ever while training) once the dataloader the strategy uses is final."""
        if self.should_grow(strategy.clock.train_exp_counter, strategy.clock.train_exp_epochs):
            self.grow_now(strategy, strategy.clock.train_exp_counter, strategy.clock.train_exp_epochs)

    def should_grow(self, experience: int, epoch: int) -> bool:
        """At the start of experiences ``>= grow_from_experience``; every ``grow_every_epochs``
        epochs inside any experience (so a one-experience stream can grow in stages)."""
        if epoch == 0:
            return experience >= self.grow_from_experience
        return bool(self.grow_every_epochs) and epoch % self.grow_every_epochs == 0

    # -------------------------------------------------------------- helpers
    def grow_now(self, strategy: Any, experience: int, epoch: int = 0) -> GrowthReport | None:
        """One growth step on the strategy's current dataloader; updates the optimizer."""
        model = self.check_model(strategy.model)
        k = self.units_for(experience)
        layers = list(range(model.num_hidden_layers)) if self.layers is None else self.layers
        if self.max_hidden_size is not None:
            room = room_under_cap(model.hidden_sizes, layers, self.max_hidden_size)
            layers = [i for i in layers if room[i] > 0]
            k = min(k, sum(room.values()))
        if k == 0 or not layers:
            return None
        old_shapes = {n: p.shape for n, p in model.named_parameters()}
        opt_state = optimizer_state_by_name(strategy.optimizer, model) if self.carry_optimizer_state else {}
        loss_fn = self.loss_fn if self.loss_fn is not None else strategy._criterion
        report = grow(
            model, k, strategy.dataloader, self.extender, self.distributor, loss_fn,
            layers=layers, max_hidden_size=self.max_hidden_size,
        )
        strategy.make_optimizer()
        if self.carry_optimizer_state:
            carry_optimizer_state(strategy.optimizer, model, opt_state, old_shapes)
        fix_regularizer_state(strategy.plugins, model, old_shapes)
        self.events.append(GrowthEvent(experience, epoch, report))
        self.cohort_experience[report.cohort] = experience
        return report

    def _fit_head(self, model: nn.Module, experience: Any) -> None:
        model = self.check_model(model)
        classes = getattr(experience, "classes_in_this_experience", None)
        if classes:
            need = max(classes) + 1
            if need > model.num_classes:
                model.add_classes(need - model.num_classes)

    def state_dict(self) -> dict[str, Any]:
        """Plugin state that a checkpoint must keep (also pickled with the strategy)."""
        return {"events": list(self.events), "cohort_experience": dict(self.cohort_experience)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.events = list(state["events"])
        self.cohort_experience = dict(state["cohort_experience"])
