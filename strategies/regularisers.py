"""Avalanche's regularisers, fixed for models that grow and gain task heads.

Each class is Avalanche's plugin with one repair, written against the Avalanche release in
:data:`AVALANCHE_VERSION` (they read its private attributes; a test pins the version):

* :class:`SIPlugin`: Synaptic Intelligence stores views instead of copies on CPU;
* :class:`TaskSafeRWalkPlugin`: RWalk fails on a parameter created after training started;
* :class:`GrowingLFLPlugin`: less-forgetful learning compares features of two widths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from avalanche.training.plugins import LFLPlugin, RWalkPlugin, SynapticIntelligencePlugin
from avalanche.training.utils import ParamData
from torch import nn

from clgrow import GrowthError

__all__ = ["SIPlugin", "TaskSafeRWalkPlugin", "GrowingLFLPlugin", "AVALANCHE_VERSION"]

#: The Avalanche release whose private attributes these plugins read (a test pins it).
AVALANCHE_VERSION = "0.6.0"


class SIPlugin(SynapticIntelligencePlugin):
    """Synaptic Intelligence with the parameter copies Avalanche 0.6 forgets to make on CPU.

    Avalanche's ``extract_weights`` stores ``param.detach().cpu().flatten()``. On a CUDA device
    that is a copy; on CPU it is a *view* of the parameter, so the stored "old" and "new"
    weights of every step are the same tensor (the path integral stays 0) and the anchor of the
    penalty moves with the weights (the penalty stays 0): SI silently trains as Naive. This
    subclass stores clones (on the CPU, as Avalanche does) and is otherwise Avalanche's plugin:
    same importances, same clipping, same penalty, identical to Avalanche's results on CUDA.
    """

    @staticmethod
    @torch.no_grad()
    def _copy(model: nn.Module, target: Mapping[str, ParamData], excluded: set[str], grad: bool = False) -> None:
        for name, param in SynapticIntelligencePlugin.allowed_parameters(model, excluded):
            src = param.grad if grad else param
            if src is None:  # a parameter without gradient this step moved by nothing
                target[name].data = torch.zeros(param.numel())
            else:
                target[name].data = src.detach().flatten().to("cpu", copy=True)

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        SynapticIntelligencePlugin.create_syn_data(
            strategy.model, self.ewc_data, self.syn_data, self.excluded_parameters
        )
        self._copy(strategy.model, self.ewc_data[0], self.excluded_parameters)
        for trajectory in self.syn_data["trajectory"].values():
            trajectory.data.fill_(0.0)

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        self._copy(strategy.model, self.syn_data["old_theta"], self.excluded_parameters)

    def after_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        syn = self.syn_data
        self._copy(strategy.model, syn["new_theta"], self.excluded_parameters)
        self._copy(strategy.model, syn["grad"], self.excluded_parameters, grad=True)
        for name in syn["trajectory"]:
            syn["trajectory"][name].data += syn["grad"][name].data * (
                syn["new_theta"][name].data - syn["old_theta"][name].data
            )


class TaskSafeRWalkPlugin(RWalkPlugin):
    """Avalanche's RWalk, taking parameters that appear after training started.

    RWalk keeps its per-parameter statistics in dicts filled when training starts; a task head
    created at a new experience of a task-incremental stream is missing from them, and
    Avalanche's plugin fails with a ``KeyError`` at its first step. Before every epoch (after the
    model adapted to the experience) each missing parameter gets its entries: the parameter's
    current value where RWalk keeps a copy of the parameters, zeros (no importance, no score, no
    accumulated loss) elsewhere.
    """

    _SNAPSHOTS = ("checkpoint_params", "exp_params")
    _ZEROS = (
        "checkpoint_loss",
        "checkpoint_scores",
        "exp_scores",
        "exp_importance",
        "exp_penalties",
        "iter_importance",
    )

    def before_training_epoch(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        for name, p in strategy.model.named_parameters():
            for attr in self._SNAPSHOTS + self._ZEROS:
                store = getattr(self, attr, None)
                if isinstance(store, dict) and store and name not in store:
                    value = p.detach().clone() if attr in self._SNAPSHOTS else torch.zeros_like(p)
                    store[name] = ParamData(name, tuple(p.shape), init_tensor=value, device=p.device)
        super().before_training_epoch(strategy, *args, **kwargs)


class GrowingLFLPlugin(LFLPlugin):
    """Less-forgetful learning on a model that grows.

    Avalanche's LFL compares the features of the current and previous model, which needs both
    to have the same width, and requires an Avalanche ``BaseModel``. Growth only appends units,
    so the previous model's features are the leading block of the current ones: the penalty
    keeps the old units' features and leaves the new ones free. The features are what the model's
    one output layer reads (or a model's own ``get_features(x)``).
    """

    def compute_features(self, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.prev_model is not None
        model.eval()
        self.prev_model.eval()
        prev = _features(self.prev_model, x)
        return _features(model, x)[:, : prev.shape[1]], prev

    def before_training(self, strategy: Any, **kwargs: Any) -> None:
        if not hasattr(strategy.model, "get_features") and _output_layer(strategy.model) is None:
            raise GrowthError(
                f"lfl needs a model with get_features(x) or one output layer clgrow can see, got "
                f"{type(strategy.model).__name__}"
            )


def _output_layer(model: nn.Module) -> nn.Module | None:
    from clgrow.sites import as_growable, known_sites

    return as_growable(model).output_layer() if known_sites(model) is not None else None


def _features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What the model's output layer reads (or its own ``get_features(x)``), ``(batch, features)``."""
    fn = getattr(model, "get_features", None)
    if fn is not None:
        return fn(x)
    head = _output_layer(model)
    if head is None:
        raise GrowthError(f"lfl: {type(model).__name__} has no one output layer to read features at")
    seen: list[torch.Tensor] = []
    handle = head.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    try:
        model(x)
    finally:
        handle.remove()
    return seen[-1].flatten(1)
