"""Per-iteration callbacks reach the plugins that act on them, in Avalanche's order."""

from __future__ import annotations

import inspect
import pickle

import pytest
import torch
from avalanche.core import BasePlugin, BaseSGDPlugin, SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics

from clgrow import mlp
from clgrow.strategies import LeanEvaluationPlugin, build_strategy
from clgrow.strategies.evaluation import LeanDispatch, _Dispatch


class Recorder(SupervisedPlugin):
    """Logs every callback it gets (all of them), with the strategy's iteration."""

    def __init__(self, log: list, tag: str) -> None:
        super().__init__()
        for name in dir(SupervisedPlugin):
            if name.startswith(("before_", "after_")):
                setattr(self, name, self._make(log, tag, name))

    @staticmethod
    def _make(log, tag, name):
        return lambda strategy, **kw: log.append((tag, name, strategy.clock.train_iterations, tuple(sorted(kw))))


class ForwardOnly(SupervisedPlugin):
    def __init__(self, log: list) -> None:
        super().__init__()
        self.log = log

    def before_forward(self, strategy, **kw):
        self.log.append(("forward-only", "before_forward", strategy.clock.train_iterations, ()))


def _run(split_digits, lean: bool, name: str) -> tuple[list, torch.Tensor]:
    log: list = []
    torch.manual_seed(0)
    model = mlp(split_digits.in_features, [8], split_digits.num_classes)
    ev = LeanEvaluationPlugin(accuracy_metrics(minibatch=True, epoch=True), loss_metrics(epoch=True), loggers=[])
    kw = {"mem_size": 20} if name in ("replay", "der") else {}
    strategy = build_strategy(
        name,
        model,
        None,
        plugins=[Recorder(log, "a"), ForwardOnly(log), Recorder(log, "b")],
        evaluator=ev,
        train_mb_size=32,
        train_epochs=2,
        **kw,
    )
    if not lean:  # Avalanche's own dispatch: the template's methods, not the instance's
        strategy.plugins = [p for p in strategy.plugins if not isinstance(p, LeanDispatch)]
    for exp in split_digits.scenario.train_stream[:2]:
        strategy.train(exp)
        strategy.eval(split_digits.scenario.test_stream[:2])
    return log, torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("name", ["naive", "replay", "der"])
def test_lean_dispatch_calls_what_avalanche_calls(split_digits, name):
    lean_log, lean_params = _run(split_digits, True, name)
    ref_log, ref_params = _run(split_digits, False, name)
    assert len(ref_log) > 500
    assert lean_log == ref_log
    assert torch.equal(lean_params, ref_params)


def test_a_plugin_attached_mid_run_is_called_from_then_on(split_digits):
    log: list = []
    model = mlp(split_digits.in_features, [8], split_digits.num_classes)
    strategy = build_strategy("naive", model, None, train_mb_size=32, train_epochs=1)
    strategy.train(split_digits.scenario.train_stream[0])
    assert isinstance(strategy._before_forward, _Dispatch)
    strategy.plugins.append(ForwardOnly(log))
    before = strategy.clock.train_iterations
    strategy.train(split_digits.scenario.train_stream[1])
    assert len(log) == strategy.clock.train_iterations - before > 0
    clone = pickle.loads(pickle.dumps(strategy._before_forward))
    assert clone.strategy is None and clone._calls == [] and clone.callback == "before_forward"


def test_avalanches_base_callbacks_are_empty():
    """The dispatch skips these as no-ops: each body is a docstring and ``pass``."""
    for cls in (BasePlugin, BaseSGDPlugin, SupervisedPlugin):
        for name, fn in vars(cls).items():
            if name.startswith(("before_", "after_")):
                src = inspect.getsource(fn)
                body = src[src.index(":\n") :] if '"""' not in src else src[src.rindex('"""') + 3 :]
                assert body.strip() in ("pass", ":\n        pass".strip()), (cls.__name__, name, body)
