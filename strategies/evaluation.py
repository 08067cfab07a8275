"""A lean ``EvaluationPlugin`` (Avalanche's, minus the callbacks no metric or logger acts on), and
per-iteration callbacks dispatched only to the plugins that act on them.

It reads Avalanche's private attributes (``GenericPluginMetric._mode``/``_reset_at``,
``EvaluationPlugin._update_metrics_and_loggers``), written against :data:`AVALANCHE_VERSION`; a
test pins the version.
"""

from __future__ import annotations

from typing import Any, ClassVar

from avalanche.core import BasePlugin, BaseSGDPlugin, SupervisedPlugin
from avalanche.evaluation import GenericPluginMetric, PluginMetric
from avalanche.logging import BaseLogger
from avalanche.training.plugins import EvaluationPlugin
from avalanche.training.templates import BaseSGDTemplate

__all__ = ["LeanEvaluationPlugin", "AVALANCHE_VERSION", "lean_dispatch", "LeanDispatch"]

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


# The template's callbacks run once or more per minibatch: Avalanche calls every plugin on each
# (nine plugins × eight callbacks per training step in a `clgrow run`), most of them base no-ops.
PER_ITERATION = (
    "before_training_iteration",
    "before_forward",
    "after_forward",
    "before_backward",
    "after_backward",
    "before_update",
    "after_update",
    "after_training_iteration",
    "before_eval_iteration",
    "before_eval_forward",
    "after_eval_forward",
    "after_eval_iteration",
)


def _acts(plugin: Any, callback: str) -> bool:
    """Whether calling ``plugin``'s ``callback`` can do anything: it is not a base's no-op nor
    :func:`_ignore` (an instance's own attributes included, as the lean plugin sets them).

    Looked up on the instance, as Avalanche's dispatch does, not on its type as :func:`_acts_on`
    judges metrics: Avalanche's own ``EvaluationPlugin`` answers callbacks through its
    ``__getattribute__`` while its class holds only the base no-ops."""
    fn = getattr(plugin, callback, None)
    if fn is None:
        return False
    fn = getattr(fn, "__func__", fn)
    return fn is not _ignore and not any(fn is getattr(base, callback, None) for base in _NO_OP_BASES)


class _Dispatch:
    """Stands in for a template's ``_before_forward`` (and the like): calls, in the strategy's
    order, the plugins that act on the callback, found again whenever the plugin list changes
    length (a plugin attached later, a metric's own plugin, is called from then on) and at every
    epoch."""

    def __init__(self, strategy: Any, callback: str) -> None:
        self.strategy = strategy
        self.callback = callback
        self._key: tuple[Any, ...] | None = None
        self._calls: list[Any] = []

    def __call__(self, **kwargs: Any) -> None:
        strategy = self.strategy
        plugins, clock = strategy.plugins, strategy.clock
        key = (id(plugins), len(plugins), clock.train_exp_counter, clock.train_exp_epochs)
        if key != self._key:
            self._calls = [getattr(p, self.callback) for p in plugins if _acts(p, self.callback)]
            self._key = key
        for call in self._calls:
            call(strategy, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        # Avalanche's checkpoint pickles a shallow copy of the strategy: a reference to the
        # original would pickle it a second time. LeanDispatch installs new ones after loading.
        return {"strategy": None, "callback": self.callback, "_key": None, "_calls": []}


def lean_dispatch(strategy: Any) -> Any:
    """Make ``strategy``'s per-iteration callbacks call only the plugins that act on them.

    The same plugins are called in the same order with the same arguments as Avalanche's
    ``trigger_plugins``; skipped are only callbacks that are a base class's empty method. A
    template that does more in one of these methods than call its plugins (DER's
    ``_before_forward``) keeps its own. Returns the strategy.
    """
    for callback in PER_ITERATION:
        name = f"_{callback}"
        if getattr(type(strategy), name, None) is getattr(BaseSGDTemplate, name):
            setattr(strategy, name, _Dispatch(strategy, callback))
    return strategy


class LeanDispatch(SupervisedPlugin):
    """Installs :func:`lean_dispatch` on its strategy as each training or evaluation phase begins
    (so a strategy loaded from Avalanche's checkpoint, whose dispatchers lost their strategy
    when pickled, gets new ones before its first iteration)."""

    plugin_order: ClassVar[int] = 0  # what it installs does not depend on its place

    def before_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        lean_dispatch(strategy)

    def before_eval(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        lean_dispatch(strategy)
