"""GrowPlugin: grow the model's hidden layers at every new experience of an Avalanche stream."""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from avalanche.core import SupervisedPlugin
from torch import nn

from clgrow import ConfigError, GrowthError, GrowthReport, grow
from clgrow.data import eligible_layers
from clgrow.measure import compute
from clgrow.measure.disruption import Probe, output_change, probe_outputs
from clgrow.methods.grow import room_under_cap
from clgrow.sites import as_growable, growable_from_loader, known_sites
from clgrow.strategies.checkpointing import make_optimizers_checkpointable
from clgrow.strategies.events import GrowthEvent, draw_probe, rehearses
from clgrow.strategies.isolation import IsolationPlugin
from clgrow.strategies.optimizer_state import carry_optimizer_state, optimizer_state_by_name
from clgrow.strategies.param_state import align_param_state, find_param_state
from clgrow.strategies.schedule import GrowthConfig, over_budget, units_under_budget

__all__ = ["GrowPlugin", "AVALANCHE_VERSION"]

#: The Avalanche release whose private attribute this module reads (the strategy's ``_criterion``,
#: when no loss function was given); a test pins it.
AVALANCHE_VERSION = "0.6.0"


class GrowPlugin(SupervisedPlugin):
    """Grow the strategy's model (any ``nn.Module`` with growth sites) while it trains.

    At the start of training on experience ``e >= grow_from_experience`` (and, with
    ``grow_every_epochs=n``, every ``n`` epochs within an experience) the plugin calls
    :func:`clgrow.methods.grow` on the data the strategy trains on (its current dataloader, so replay
    samples are included), then brings the optimizer and the regularisers up to date.

    Parameters
    ----------
    config : GrowthConfig, optional
        Every growth setting (units per step, extender and distributor with their arguments,
        schedule, cap, layers, head growth, optimizer-state carry); default ``GrowthConfig()``.
    loss_fn : callable, optional
        Loss used for growth (default: the strategy's criterion).
    **settings
        :class:`~clgrow.strategies.GrowthConfig` fields overriding ``config``, e.g.
        ``GrowPlugin(neurons_per_experience=32, extender="swe", distributor="svod")``.
    """

    #: Where it stands among the strategy's plugins (``build_strategy`` sorts by it): last: it grows the model the others have pruned and reset.
    plugin_order: ClassVar[int] = 50

    def __init__(
        self,
        config: GrowthConfig | None = None,
        *,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        **settings: Any,
    ) -> None:
        super().__init__()
        # A grown strategy should survive Avalanche's checkpoints; dill needs torch.optim's
        # submodules back on the package to pickle the optimizer (clgrow.strategies.checkpointing).
        make_optimizers_checkpointable()
        if config is not None and not isinstance(config, GrowthConfig):
            raise ConfigError(f"GrowPlugin config must be a GrowthConfig, got {type(config).__name__}")
        self.config = (config or GrowthConfig()).merged(**settings).validate()
        self.extender, self.distributor = self.config.build()
        self.loss_fn = loss_fn
        self.events: list[GrowthEvent] = []
        self.cohort_experience: dict[int, int] = {0: -1}
        #: A fixed sample of every trained experience's data, drawn when training on it ends:
        #: growth disruption is measured on it. Never shown to the growth methods.
        self.probes: list[Probe] = []
        #: With ``isolation="freeze"``: each experience trains the units it gained (clgrow.strategies.isolation);
        #: with ``"auto"`` only once the stream has shown two task labels (task-incremental).
        self.isolation = IsolationPlugin() if self.config.isolation != "none" else None
        self.tasks_seen: set[int] = set()

    # ------------------------------------------------------------------ API
    def units_for(self, experience: int, epoch: int = 0, train_epochs: int = 1) -> int:
        """Units to add at ``experience``'s ``epoch`` (before the ``max_hidden_size`` cap)."""
        step = self.config.step_index(experience, epoch, train_epochs)
        return self.config.units_for(experience, step)

    @staticmethod
    def check_model(model: nn.Module) -> nn.Module:
        """Return ``model`` if the plugin can grow it (a clgrow model, or any ``nn.Module``: its
        sites are traced at the first growth step), else raise a clear ``GrowthError``."""
        if not isinstance(model, nn.Module):
            raise GrowthError(f"GrowPlugin grows an nn.Module, got {type(model).__name__}")
        return model

    # ------------------------------------------------------------ callbacks
    def before_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """Fail at the start of training, not inside the first growth step."""
        model = self.check_model(strategy.model)
        if getattr(strategy, "optimized_param_id", False) is None:
            # Let Avalanche map parameter names to optimizer entries before anything grows:
            # a tensor replaced before that first mapping would stay in the optimizer as a stale copy.
            strategy.make_optimizer(reset_optimizer_state=True)
        why = over_budget(model, self.config.max_params)
        if why is not None:
            raise GrowthError(f"max_params={why}")
        found = known_sites(model)
        if self.config.layers is not None and found is not None:
            bad = [i for i in self.config.layers if not 0 <= i < len(found.sites)]
            if bad:
                raise GrowthError(
                    f"GrowPlugin layers {bad} do not exist: the model has layers 0..{len(found.sites) - 1}"
                )

    def after_train_dataset_adaptation(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """Grow the head for new classes before the strategy builds its optimizer."""
        if self.config.grow_head:
            self._fit_head(strategy.model, strategy.experience)

    def after_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """Keep a probe of the experience just trained (for later growth steps' disruption)."""
        if self.isolation is not None:
            self.isolation.stop()
        n = self.config.disruption_probe
        dataset = getattr(strategy.experience, "dataset", None)
        if n > 0 and dataset is not None:
            exp = int(strategy.clock.train_exp_counter)
            self.probes = [p for p in self.probes if p.experience != exp] + [draw_probe(dataset, exp, n)]

    def before_eval_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """Evaluation on classes not yet trained needs outputs for them too."""
        if self.config.grow_head:
            self._fit_head(strategy.model, strategy.experience)

    def before_training_epoch(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """Grow (only ever while training) once the dataloader the strategy uses is final."""
        if self.should_grow(strategy.clock.train_exp_counter, strategy.clock.train_exp_epochs):
            self.grow_now(strategy, strategy.clock.train_exp_counter, strategy.clock.train_exp_epochs)
        if self.isolation is not None and self.isolates(strategy.experience):
            self.isolation.start(strategy, self.cohort_experience)  # this experience's masks, over its new units

    def isolates(self, experience: Any) -> bool:
        """Whether units are owned by experience while ``experience`` trains: always with
        ``isolation="freeze"``; with ``"auto"`` once two task labels were trained (a
        task-incremental stream, where old tasks are read through their own heads; class-
        incrementally one head reads every unit, and freezing old units costs the new classes
        more than it saves: BENCHMARKS.md, "Growth that pays")."""
        self.tasks_seen.update(int(t) for t in getattr(experience, "task_labels", None) or [])
        return self.config.isolates(task_incremental=len(self.tasks_seen) > 1)

    def after_update(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """With isolation: frozen entries back where they were."""
        if self.isolation is not None:
            self.isolation.after_update(strategy)

    def should_grow(self, experience: int, epoch: int) -> bool:
        """At the start of experiences ``>= grow_from_experience``; every ``grow_every_epochs``
        epochs inside any experience (so a one-experience stream can grow in stages)."""
        if epoch == 0:
            return experience >= self.config.grow_from_experience
        every = self.config.grow_every_epochs
        return every is not None and every > 0 and epoch % every == 0

    # -------------------------------------------------------------- helpers
    def grow_now(self, strategy: Any, experience: int, epoch: int = 0) -> GrowthReport | None:
        """One growth step on the strategy's current dataloader; updates the optimizer."""
        raw = self.check_model(strategy.model)
        # a model clgrow did not build is traced on this experience's data (heads may have changed)
        model = growable_from_loader(raw, strategy.dataloader)
        k = self.units_for(experience, epoch, int(getattr(strategy, "train_epochs", 1)))
        if self.config.regrow_pruned and epoch == 0:  # any plugin that prunes says how many units left
            k += sum(
                int(p.units_pruned(experience)) for p in strategy.plugins if callable(getattr(p, "units_pruned", None))
            )
        layers = eligible_layers(model.num_hidden_layers, self.config.layers)
        if self.config.max_hidden_size is not None:
            room = room_under_cap(model.hidden_sizes, layers, self.config.max_hidden_size)
            layers = [i for i in layers if room[i] > 0]
            k = min(k, sum(room.values()))
        if self.config.max_params is not None:
            k = min(k, units_under_budget(model, layers, self.config.max_params))
        if k == 0 or not layers:
            return None
        old_shapes = {n: p.shape for n, p in raw.named_parameters()}
        stores = find_param_state(strategy.plugins, raw)  # refuses an unalignable plugin before growing
        opt_state = optimizer_state_by_name(strategy.optimizer, raw) if self.config.carry_optimizer_state else {}
        loss_fn = self.loss_fn if self.loss_fn is not None else strategy._criterion
        probes = [p for p in self.probes if p.experience != experience]
        started = time.perf_counter()
        with compute.phase("probe"):
            before = [probe_outputs(model, p) for p in probes]
        probe_seconds = time.perf_counter() - started
        with compute.phase("growth"):
            report = grow(
                model,
                k,
                strategy.dataloader,
                self.extender,
                self.distributor,
                loss_fn,
                layers=layers,
                max_hidden_size=self.config.max_hidden_size,
                new_task=epoch == 0,
                rehearsal=rehearses(strategy),
            )
        started = time.perf_counter()
        with compute.phase("probe"):
            after = [probe_outputs(model, p) for p in probes]
        disruption = [output_change(b, a, p.y, p.experience) for b, a, p in zip(before, after, probes)]
        probe_seconds += time.perf_counter() - started
        strategy.make_optimizer()
        if self.config.carry_optimizer_state:
            carry_optimizer_state(strategy.optimizer, raw, opt_state, old_shapes)
        align_param_state(stores, raw, old_shapes)
        self.events.append(GrowthEvent(experience, epoch, report, disruption, probe_seconds))
        self.cohort_experience[report.cohort] = experience
        return report

    @staticmethod
    def _fit_head(model: nn.Module, experience: Any) -> None:
        """Give the model's one output layer an output for every class ``experience`` holds."""
        classes = getattr(experience, "classes_in_this_experience", None)
        if classes and known_sites(model) is not None:
            grown = as_growable(model)
            need = max(classes) + 1
            if need > grown.num_classes:
                grown.add_classes(need - grown.num_classes)

    def state_dict(self) -> dict[str, Any]:
        """Plugin state that a checkpoint must keep: growth events as plain data, no tensors."""
        return {"events": [e.to_dict() for e in self.events], "cohort_experience": dict(self.cohort_experience)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.events = [GrowthEvent.from_dict(e) for e in state["events"]]
        self.cohort_experience = {int(k): int(v) for k, v in state["cohort_experience"].items()}

    def __getstate__(self) -> dict[str, Any]:
        # Avalanche's checkpoints pickle the whole strategy, this plugin included: keep them small
        # by writing the state_dict instead of every report's tensors and the methods' last details.
        state = self.__dict__.copy()
        state.update(self.state_dict())
        cfg = {}
        for name in ("extender", "distributor"):
            method = copy.copy(state[name])
            method.info = {}
            state[name] = method
            if not isinstance(getattr(self.config, name), str):
                cfg[name] = method
        state["config"] = dataclasses.replace(self.config, **cfg)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.load_state_dict({"events": state["events"], "cohort_experience": state["cohort_experience"]})
