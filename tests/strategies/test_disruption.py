"""The plugin's growth-disruption record: recomputed from its definition, zero for random growth,
and within a stated bound for the default SWE at a new task."""

from __future__ import annotations

import copy

import pytest
import torch
from avalanche.core import SupervisedPlugin

from clgrow import SWE, RandomExtender, SVoD, mlp, output_change, probe_outputs
from clgrow.strategies import GrowPlugin, build_strategy
from tests.helpers import sites, task_mlp
from tests.strategies.conftest import quiet
from tests.zoo import add_task_head


class Snapshots(SupervisedPlugin):
    """Copies of the model right before and right after each growth step at an experience start
    (placed around the GrowPlugin in the plugin list)."""

    def __init__(self) -> None:
        super().__init__()
        self.before: dict[int, torch.nn.Module] = {}
        self.after: dict[int, torch.nn.Module] = {}
        self._pending: int | None = None

    def before_training_epoch(self, strategy, **kwargs):
        if strategy.clock.train_exp_epochs == 0:
            if self._pending is None:
                self._pending = strategy.clock.train_exp_counter
                self.before[self._pending] = copy.deepcopy(strategy.model)
            else:
                self.after[self._pending] = copy.deepcopy(strategy.model)
                self._pending = None


def _stream(bm, model, extender, n_exp=3, probe=50):
    plugin = GrowPlugin(
        neurons_per_experience=6,
        extender=extender,
        distributor=SVoD(train_passes=0.25, vote_passes=0.25),
        disruption_probe=probe,
    )
    snap = Snapshots()
    # the same Snapshots object is called before the GrowPlugin (first call) and after it (second)
    strategy = build_strategy(
        "naive", model, None, plugins=[snap, plugin, snap], train_mb_size=16, train_epochs=1, evaluator=quiet()
    )
    for exp in bm.scenario.train_stream[:n_exp]:
        strategy.train(exp)
    return plugin, snap


def test_disruption_recomputed_from_its_definition(split_digits):
    bm = split_digits
    model = mlp(bm.in_features, [12, 12], bm.num_classes)
    # a deliberately disruptive SWE: the paper's unconstrained integration, trained long
    plugin, snap = _stream(bm, model, SWE(passes=2.0, old_rows="move", consumers="all", trust=None))
    assert [e.experience for e in plugin.events] == [1, 2]
    assert [p.experience for p in plugin.probes] == [0, 1, 2] and all(len(p.y) == 50 for p in plugin.probes)
    some = 0.0
    for event in plugin.events:
        e = event.experience
        probes = [p for p in plugin.probes if p.experience < e]
        assert [c.experience for c in event.disruption] == [p.experience for p in probes]
        for c, p in zip(event.disruption, probes):
            want = output_change(probe_outputs(snap.before[e], p), probe_outputs(snap.after[e], p), p.y, p.experience)
            assert c.accuracy_before == pytest.approx(want.accuracy_before)
            assert c.accuracy_after == pytest.approx(want.accuracy_after)
            assert c.kl == pytest.approx(want.kl, rel=1e-4, abs=1e-9)
            some += c.kl
        assert event.disruption_drop == pytest.approx(sum(c.drop for c in event.disruption) / len(probes))
    assert some > 1e-4  # the unconstrained SWE does move the old outputs


def test_random_growth_does_not_disrupt_and_probes_can_be_off(split_digits):
    bm = split_digits
    plugin, _ = _stream(bm, mlp(bm.in_features, [12, 12], bm.num_classes), RandomExtender())
    assert all(c.drop == 0.0 and c.kl < 1e-10 for e in plugin.events for c in e.disruption)
    off, _ = _stream(bm, mlp(bm.in_features, [12, 12], bm.num_classes), RandomExtender(), probe=0)
    assert off.probes == [] and all(e.disruption == [] and e.disruption_drop is None for e in off.events)


@pytest.mark.parametrize("task_labels", [True, False])
def test_default_swe_leaves_old_tasks_outputs_in_place(split_digits, split_digits_tasks, task_labels):
    """At a new experience the default SWE changes the outputs on the old experiences' probes by
    at most 1e-6 nats (mean KL) and no accuracy, task- and class-incremental; the same SWE at a
    new experience with the earlier settings moves them."""
    bm = split_digits_tasks if task_labels else split_digits
    make = (
        (lambda: task_mlp(bm.in_features, [12, 12], bm.head_size))
        if task_labels
        else (lambda: mlp(bm.in_features, [12, 12], bm.num_classes))
    )
    torch.manual_seed(0)
    plugin, _ = _stream(bm, make(), SWE(passes=2.0))
    assert plugin.events and all(e.disruption for e in plugin.events)
    for event in plugin.events:
        info = event.report.info["extender"]
        assert info and all(v["old_rows"] == "restore" and v["consumers"] == "protect" for v in info.values())
        for c in event.disruption:
            assert c.drop == 0.0 and c.kl < 1e-6
    torch.manual_seed(0)
    moved, _ = _stream(bm, make(), SWE(passes=2.0, old_rows="move", consumers="all"))
    assert max(c.kl for e in moved.events for c in e.disruption) > 1e-4


def test_gradmax_on_a_multi_head_model_with_mixed_task_batches():
    """Replay in a task-incremental stream mixes tasks in a batch; GradMax's gradient product
    ``E[g h^T]`` then equals the one taken over the same samples in single-task batches."""
    from torch.utils.data import DataLoader, TensorDataset

    from clgrow import GradMaxExtender
    from clgrow.data import GrowthContext

    torch.manual_seed(0)
    x, y = torch.randn(48, 10), torch.randint(0, 3, (48,))
    t = torch.arange(48) % 2
    model = task_mlp(10, [6, 5], 3)
    add_task_head(model, 1)
    products = []
    for order in (torch.arange(48), torch.argsort(t, stable=True)):  # mixed, then grouped by task
        loader = DataLoader(TensorDataset(x[order], y[order], t[order]), batch_size=24)
        ctx = GrowthContext(loader, torch.nn.functional.cross_entropy, [1, 0])
        products.append([GradMaxExtender(passes=1.0).gradient_product(model, layer, ctx) for layer in (0, 1)])
    assert len(products[0][1]) == 2  # layer 1 feeds both task heads
    for a, b in zip(products[0], products[1]):
        for (m1,), (m2,) in zip(a, b):  # per reader, per producer (one here)
            assert m1.abs().sum() > 0
            torch.testing.assert_close(m1, m2, rtol=1e-4, atol=1e-6)


def test_lwf_on_a_multi_head_model(split_digits_tasks):
    """Avalanche's LwF asks a multi-task model for every head's output (no task labels): the
    multi-head model answers as Avalanche's MultiTaskModule does, and a grown LwF stream trains."""
    bm = split_digits_tasks
    model = task_mlp(bm.in_features, [8, 8], bm.head_size)
    add_task_head(model, 1)
    model.known_train_tasks_labels.update({0, 1})  # what Avalanche's adaptation records of trained tasks
    x = torch.stack([bm.scenario.test_stream[0].dataset[i][0] for i in range(3)])
    out = model(x)
    assert isinstance(out, dict) and sorted(out) == [0, 1]
    assert torch.allclose(out[1], model(x, torch.ones(3, dtype=torch.long)))
    plugin = GrowPlugin(
        neurons_per_experience=4, extender=SWE(passes=0.25), distributor=SVoD(train_passes=0.25, vote_passes=0.25)
    )
    strategy = build_strategy("lwf", model, None, plugins=[plugin], train_mb_size=32, train_epochs=1, evaluator=quiet())
    for exp in bm.scenario.train_stream[:3]:
        strategy.train(exp)
    assert len(plugin.events) == 2 and sum(sites(model).hidden_sizes) == 24


@pytest.mark.parametrize("name, rehearsal", [("naive", False), ("ewc", False), ("replay", True), ("cumulative", True)])
@pytest.mark.parametrize("rehearsal_consumers", ["protect", "all"])
def test_growth_knows_when_the_strategy_rehearses(split_digits, name, rehearsal, rehearsal_consumers):
    """A strategy whose training data outnumber the new experience's (a replay buffer, every
    experience so far) rehearses: SWE then uses its ``rehearsal_consumers`` (by default
    ``protect``, as without rehearsal: the old tasks' outputs do not move; ``all`` trains every
    consumer weight on the replayed data); old rows are restored either way."""
    bm = split_digits
    model = mlp(bm.in_features, [8, 8], bm.num_classes)
    plugin = GrowPlugin(
        neurons_per_experience=4,
        extender=SWE(passes=0.25, rehearsal_consumers=rehearsal_consumers),
        distributor=SVoD(train_passes=0.25, vote_passes=0.25),
    )
    kwargs = {"mem_size": 40} if name == "replay" else {"ewc_lambda": 1.0} if name == "ewc" else {}
    strategy = build_strategy(
        name, model, None, plugins=[plugin], train_mb_size=32, train_epochs=1, evaluator=quiet(), **kwargs
    )
    for exp in bm.scenario.train_stream[:3]:
        strategy.train(exp)
    want = ("restore", rehearsal_consumers if rehearsal else "protect")
    for event in plugin.events:
        info = event.report.info["extender"]
        assert info and all((v["old_rows"], v["consumers"]) == want for v in info.values())
    if want[1] == "protect":
        assert all(c.drop == 0.0 and c.kl < 1e-6 for e in plugin.events for c in e.disruption)
    else:
        assert max(c.kl for e in plugin.events for c in e.disruption) > 1e-6
