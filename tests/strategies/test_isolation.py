"""Isolation in a stream: each experience trains the units it gained; old tasks stay answered."""

from __future__ import annotations

import pytest
import torch

from clgrow.strategies import IsolationPlugin, build_strategy
from tests.helpers import sites, task_mlp
from tests.strategies.conftest import all_params_optimized, fast_plugin, quiet


def _task_outputs(model: torch.nn.Module, exp, task: int) -> torch.Tensor:
    """The model's outputs ``(n, classes)`` on a task's test set, through that task's head."""
    ds = exp.dataset.eval()
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    model.eval()
    with torch.no_grad():
        return model(x, torch.full((len(x),), task, dtype=torch.long))


@pytest.mark.parametrize("isolation", ["freeze", "auto"])
def test_task_incremental_naive_with_isolation_forgets_nothing(split_digits_tasks, isolation):
    """Old units and old heads stay put: every task's test outputs at the end are what they were
    right after its own experience; the model still grew and everything it has is optimized
    (``auto`` isolates once a second task label arrives)."""
    bm = split_digits_tasks
    model = task_mlp(bm.in_features, [16, 16], bm.head_size)
    plugin = fast_plugin(isolation=isolation)
    strategy = build_strategy(
        "naive", model, None, plugins=[plugin], train_mb_size=32, train_epochs=2, evaluator=quiet()
    )
    test = bm.scenario.test_stream
    learned = []
    for i, exp in enumerate(bm.scenario.train_stream):
        strategy.train(exp)
        assert all_params_optimized(strategy)
        learned.append(_task_outputs(model, test[i], i))
    for before, exp, i in zip(learned, test, range(len(learned))):
        # widened matrix products may sum in another order: equal up to rounding
        torch.testing.assert_close(_task_outputs(model, exp, i), before, rtol=0, atol=1e-6)
    assert sum(sites(model).hidden_sizes) == 32 + 4 * 4


def test_a_fixed_model_split_in_advance_keeps_its_later_units_for_later_experiences(split_digits_tasks):
    """The baseline that isolates without growing: the model has its final widths from the start,
    and what a task learned is kept as with growth (a head made for a later task reads no unit of
    the tasks after it)."""
    bm = split_digits_tasks
    model = task_mlp(bm.in_features, [20, 20], bm.head_size)
    split = [[12, 12], [14, 14], [16, 16], [18, 18], [20, 20]]
    strategy = build_strategy(
        "naive",
        model,
        None,
        plugins=[IsolationPlugin(split=split)],
        train_mb_size=32,
        train_epochs=2,
        evaluator=quiet(),
    )
    test = bm.scenario.test_stream
    learned = []
    for i, exp in enumerate(bm.scenario.train_stream):
        strategy.train(exp)
        learned.append(_task_outputs(model, test[i], i))
    for i, before in enumerate(learned):
        assert torch.equal(_task_outputs(model, test[i], i), before), i
    assert sites(model).cohort(0).tolist() == [0] * 12 + [1, 1, 2, 2, 3, 3, 4, 4]


def test_auto_isolation_leaves_a_class_incremental_stream_unmasked(split_digits):
    """One task label throughout: ``auto`` never masks, so old units keep learning (their
    incoming rows change in the second experience) and the run is the unisolated one."""
    from clgrow.models import mlp
    from clgrow.sites import as_growable

    bm = split_digits
    runs = {}
    for isolation in ("none", "auto"):
        torch.manual_seed(0)
        model = mlp(bm.in_features, [16, 16], bm.num_classes)
        plugin = fast_plugin(isolation=isolation)
        strategy = build_strategy("naive", model, None, plugins=[plugin], train_mb_size=32, evaluator=quiet())
        stream = bm.scenario.train_stream
        strategy.train(stream[0])
        first = as_growable(model).members(0)[0].producer.weight[:16].detach().clone()
        torch.manual_seed(1)
        strategy.train(stream[1])
        assert not plugin.isolates(stream[1])
        assert not torch.equal(as_growable(model).members(0)[0].producer.weight[:16], first)
        runs[isolation] = [p.detach().clone() for p in model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(runs["none"], runs["auto"]))
