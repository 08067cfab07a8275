"""ComputePlugin: the multiply-adds an Avalanche strategy spends, by phase (:mod:`clgrow.measure.compute`)."""

from __future__ import annotations

from typing import Any

from avalanche.core import SupervisedPlugin
from torch import nn

from clgrow.measure import compute
from clgrow.measure.compute import ComputeCounter

__all__ = ["ComputePlugin", "find_compute_plugin"]


class ComputePlugin(SupervisedPlugin):
    """Count the multiply-adds of training, evaluation, growth and growth's probes while the
    strategy trains and evaluates, and parameters × training samples.

    Growth and its probes are told apart by :class:`~clgrow.strategies.GrowPlugin`; everything
    else in training counts as training (replay samples included: they are in the batches).
    """

    def __init__(self) -> None:
        super().__init__()
        self.counter = ComputeCounter()
        self._outer: list[ComputeCounter | None] = []
        self._hook: Any = None

    def _start(self, name: str, model: Any = None) -> None:
        self._outer.append(compute.activate(self.counter))
        compute.set_phase(name)
        if isinstance(model, nn.Module) and self._hook is None:
            self._hook = compute.watch(model)

    def _stop(self) -> None:
        compute.activate(self._outer.pop() if self._outer else None)
        compute.set_phase("train")
        if self._hook is not None and not self._outer:
            self._hook.remove()
            self._hook = None

    def before_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._start("train", strategy.model)

    def after_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._stop()

    def before_eval(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._start("eval", strategy.model)

    def after_eval(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._stop()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_hook"] = None  # a hook handle does not survive pickling (checkpoints)
        return state

    def after_training_iteration(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        params = sum(p.numel() for p in strategy.model.parameters())
        self.counter.param_samples += len(strategy.mb_x) * params
        self.counter.train_samples += len(strategy.mb_x)


def find_compute_plugin(strategy: Any) -> ComputePlugin | None:
    """The strategy's ComputePlugin, if it has one."""
    return next((p for p in strategy.plugins if isinstance(p, ComputePlugin)), None)
