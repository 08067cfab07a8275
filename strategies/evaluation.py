"""A lean ``EvaluationPlugin``: Avalanche's, minus the callbacks no metric or logger acts on.

It reads Avalanche's private attributes (``GenericPluginMetric._mode``/``_reset_at``,
``EvaluationPlugin._update_metrics_and_loggers``), written against :data:`AVALANCHE_VERSION`; a
test pins the version.
"""

from __future__ import annotations

from typing import Any

from avalanche.core import BasePlugin, BaseSGDPlugin, SupervisedPlugin
from avalanche.evaluation import GenericPluginMetric, PluginMetric
from avalanche.logging import BaseLogger
from avalanche.training.plugins import EvaluationPlugin

__all__ = ["LeanEvaluationPlugin", "AVALANCHE_VERSION"]

#: The Avalanche release whose private attributes this module reads (a test pins it).
AVALANCHE_VERSION = "0.6.0"

# Avalanche's base classes, whose callbacks do nothing.
_NO_OP_BASES = (PluginMetric, BasePlugin, BaseSGDPlugin, SupervisedPlugin)


# GenericPluginMetric's per-iteration callbacks (Avalanche's accuracy, loss, forgetting...) and
# when they act, read from its source: each metric is fixed to a phase and reset point at
# construction, so an evaluation metric does nothing in a training iteration and vice versa.
_GENERIC_ITERATION = {
    "before_training_iteration": lambda m: m._reset_at == "iteration" and m._mode == "train",
    "after_training_iteration": lambda m: m._mode == "train",
    "before_eval_iteration": lambda m: m._reset_at == "iteration" and m._mode == "eval",
    "after_eval_iteration": lambda m: m._mode == "eval",
}


def _acts_on(obj: Any, callback: str) -> bool:
    """Whether ``obj`` does anything on ``callback``: defines it other than as a base's no-op."""
    if callback in getattr(obj, "__dict__", {}):
        return True
    fn = getattr(type(obj), callback, None)
    if fn is None or any(fn is getattr(base, callback, None) for base in _NO_OP_BASES):
        return False
    if callback in _GENERIC_ITERATION and fn is getattr(GenericPluginMetric, callback):
        return bool(_GENERIC_ITERATION[callback](obj))
    return True


def _ignore(strategy: Any, *args: Any, **kwargs: Any) -> None:
    return None


class _Forward:
    """A callback handed to the metrics and loggers, as Avalanche's plugin forwards it."""

    __slots__ = ("callback", "plugin")

    def __init__(self, plugin: EvaluationPlugin, callback: str) -> None:
        self.plugin = plugin
        self.callback = callback

    def __call__(self, strategy: Any, *args: Any, **kwargs: Any) -> Any:
        return self.plugin._update_metrics_and_loggers(strategy, self.callback)


class LeanEvaluationPlugin(EvaluationPlugin):
    """Avalanche's ``EvaluationPlugin``, minus the callbacks no metric or logger acts on.

    Avalanche's plugin handles every one of the strategy's callbacks (eight per training
    iteration, four per evaluation iteration) by swapping in a logging view of the experience
    (a copy), calling every metric, and handing an empty list to every logger; and it finds
    each callback through a Python-level ``__getattribute__`` that raises and catches an
    ``AttributeError`` on every access. A callback that every metric inherits as a no-op from
    ``PluginMetric`` (``before_forward``, ``after_backward``, ... for the usual metrics) and no
    logger defines changes nothing, so it is answered by a no-op here, as is a per-iteration
    callback of Avalanche's ``GenericPluginMetric`` in the phase its metric does not measure.
    The others are forwarded exactly as Avalanche forwards them, and found by plain attribute
    lookup. The choice is made at construction, from the metrics and loggers given (Avalanche
    fixes both there too).
    """

    __getattribute__ = object.__getattribute__

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for callback in dir(SupervisedPlugin):
            if callback.startswith(("before_", "after_")) and callback not in EvaluationPlugin.__dict__:
                setattr(self, callback, _Forward(self, callback) if self._anyone_acts_on(callback) else _ignore)

    def __getattr__(self, item: str) -> Any:
        # only reached when lookup fails: callbacks of other templates, forwarded as Avalanche does
        if item.startswith(("before_", "after_")):
            return _Forward(self, item)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {item!r}")

    def _anyone_acts_on(self, callback: str) -> bool:
        # a logger that takes over log_metrics may act on the empty list it receives every time
        return any(_acts_on(m, callback) for m in self.metrics) or any(
            _acts_on(lg, callback) or type(lg).log_metrics is not BaseLogger.log_metrics for lg in self.loggers
        )
