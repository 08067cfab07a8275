"""PlasticityPlugin: ReDo or continual backprop on an Avalanche strategy's model, next to growth."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from avalanche.core import SupervisedPlugin
from torch import nn

from clgrow import GrowthError
from clgrow.data import unpack
from clgrow.methods.plasticity import PlasticityMethod, build_plasticity_method, hidden_activations, keep_entries
from clgrow.sites import GrowableModule, as_growable
from clgrow.strategies.growable import growable_model

__all__ = ["PlasticityPlugin", "find_plasticity_plugin"]


class PlasticityPlugin(SupervisedPlugin):
    """Reset hidden units of the strategy's model (a clgrow model or any module with growth sites)
    while an Avalanche strategy trains.

    At the start of every training experience the method may score one batch of the strategy's
    own dataloader (ReDo: experiences ``>= from_experience``); methods that act per step (CBP,
    ReDo with ``every``) see the post-ReLU activations of the strategy's own forward pass of
    each training iteration (the model's activation observers), after the optimizer step. The
    optimizer state of exactly the reset entries is cleared. Attached before a GrowPlugin,
    resets happen before growth at an experience's start.

    Parameters
    ----------
    method : str or PlasticityMethod
        ``"redo"``, ``"cbp"`` or an instance.
    **kwargs
        The named method's arguments (``tau``, ``every``, ``replacement_rate``, ...).

    Attributes
    ----------
    counts : dict
        ``{training experience: {layer: units reset}}``.
    last_reset : list of LongTensor ``(n,)``
        Per hidden layer, the experience each unit was last reset in (``-1``: never); units
        added by growth afterwards read as never reset.
    """

    #: Where it stands among the strategy's plugins (``build_strategy`` sorts by it): an experience's resets come before its growth.
    plugin_order: ClassVar[int] = 40

    def __init__(self, method: str | PlasticityMethod = "redo", **kwargs: Any) -> None:
        super().__init__()
        if isinstance(method, PlasticityMethod):
            if kwargs:
                raise GrowthError("PlasticityPlugin: keyword arguments apply to a method given by name")
            self.resetter = method
        else:
            resetter = build_plasticity_method(method, **kwargs)
            if resetter is None:
                raise GrowthError("PlasticityPlugin needs a method ('redo' or 'cbp'); for none, attach no plugin")
            self.resetter = resetter
        self.counts: dict[int, dict[int, int]] = {}
        self.last_reset: list[torch.Tensor] = []
        self._handles: list[Any] = []
        self._capturing = False
        self._acts: dict[int, torch.Tensor] = {}
        self._step = 0
        self._model: Any = None  # the model as clgrow resets it, during one experience

    # ------------------------------------------------------------ callbacks
    @staticmethod
    def check_model(model: Any) -> nn.Module:
        """Return ``model`` if its units can be reset (a clgrow model, or any ``nn.Module``: its
        sites are traced at its first experience), else raise a clear ``GrowthError``."""
        if not isinstance(model, nn.Module):
            raise GrowthError(f"plasticity resets need an nn.Module, got {type(model).__name__}")
        return model

    def before_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """Refuse what is not a model before anything trains."""
        self.check_model(strategy.model)

    def after_train_dataset_adaptation(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """The model's sites (traced on this experience for a module clgrow did not build), made
        ready before the strategy builds its optimizer (a producer without a bias gets one)."""
        self._model = self._sites(strategy)
        if isinstance(self._model, GrowableModule):
            self._model.prepare()

    @staticmethod
    def _sites(strategy: Any) -> Any:
        return growable_model(strategy, strict=True)

    def before_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """Count steps afresh; capture activations where the method acts per step."""
        self._step = 0
        self._stop_observing()
        if self._model is None:
            self._model = self._sites(strategy)
        if self.resetter.needs_steps:
            self._handles = [self._model.observe_activations(self._observe)]

    def before_training_epoch(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """At an experience's first epoch (its loader final, growth not yet run): the experience's resets."""
        exp = int(strategy.clock.train_exp_counter)
        if strategy.clock.train_exp_epochs != 0 or not self.resetter.wants_probe(exp):
            return
        batch = next(iter(strategy.dataloader), None)
        if batch is None:
            return
        x, _, t = unpack(batch, strategy.device)
        model = self._model if self._model is not None else self._sites(strategy)
        self._record(
            exp, self.resetter.at_experience(model, exp, hidden_activations(model, x, t), strategy.optimizer), model
        )

    def before_forward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """Only the strategy's own training forward is captured (not growth's or evaluation's)."""
        self._capturing = True

    def after_forward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._capturing = False

    def after_training_iteration(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        """After the optimizer step: per-step resets on the activations of the batch just trained on."""
        if not self.resetter.needs_steps:
            return
        self._step += 1
        model = self._model if self._model is not None else self._sites(strategy)
        acts = [self._acts.get(i) for i in range(model.num_hidden_layers)]
        self._acts = {}
        captured = [a for a, w in zip(acts, model.hidden_sizes) if a is not None and a.shape[1] == w]
        if len(captured) < len(acts):
            return  # no complete capture of this model's widths
        exp = int(strategy.clock.train_exp_counter)
        self._record(exp, self.resetter.after_step(model, self._step, captured, strategy.optimizer), model)

    def after_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._stop_observing()
        self._model = None
        self.counts.setdefault(int(strategy.clock.train_exp_counter), {})

    # -------------------------------------------------------------- helpers
    def _observe(self, layer: int, h: torch.Tensor) -> None:
        if self._capturing:
            self._acts[layer] = h.detach()

    def _stop_observing(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def reset_labels(self, model: nn.Module) -> list[torch.Tensor]:
        """Per hidden layer ``(n,)``: the experience each unit was last reset in, ``-1`` if never."""
        out = []
        for i, n in enumerate(as_growable(model).hidden_sizes):
            lab = torch.full((n,), -1, dtype=torch.long)
            if i < len(self.last_reset):
                old = self.last_reset[i][:n]
                lab[: old.numel()] = old
            out.append(lab)
        return out

    def _record(self, experience: int, reset: dict[int, torch.Tensor], model: nn.Module) -> None:
        counts = self.counts.setdefault(experience, {})
        if not reset:
            return
        self.last_reset = self.reset_labels(model)
        for layer, units in reset.items():
            self.last_reset[layer][units.cpu()] = experience
            counts[layer] = counts.get(layer, 0) + int(units.numel())

    def prune_units(self, kept: dict[int, torch.Tensor]) -> None:
        """Slice the per-unit state (the method's and the reset labels) to the units a prune kept."""
        self.resetter.prune_units(kept)
        for layer, keep in kept.items():
            if layer < len(self.last_reset):
                self.last_reset[layer] = keep_entries(self.last_reset[layer], keep)

    def units_reset(self, experience: int) -> int:
        """Units reset during training experience ``experience``."""
        return sum(self.counts.get(experience, {}).values())

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps: counts, last resets and the method's running state."""
        return {
            "counts": {e: dict(c) for e, c in self.counts.items()},
            "last_reset": [t.clone() for t in self.last_reset],
            "resetter": self.resetter.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.counts = {int(e): {int(k): int(v) for k, v in c.items()} for e, c in state["counts"].items()}
        self.last_reset = [t.clone() for t in state["last_reset"]]
        self.resetter.load_state_dict(state["resetter"])

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = []  # observer handles do not survive pickling (checkpoints)
        state["_acts"] = {}
        state["_model"] = None
        return state


def find_plasticity_plugin(strategy: Any) -> PlasticityPlugin | None:
    """The strategy's PlasticityPlugin, if any (looked up each time: checkpoints replace plugins)."""
    for p in getattr(strategy, "plugins", []):
        if isinstance(p, PlasticityPlugin):
            return p
    return None
