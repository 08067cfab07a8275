"""Inactivity and growth metrics, and the results writer that keeps them all."""

from __future__ import annotations

import csv
import json

import pytest
from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics
from avalanche.training.plugins import EvaluationPlugin
from torch.utils.data import ConcatDataset, DataLoader

from clgrow import measure_inactivity, mlp
from clgrow.strategies import ResultsWriter, build_strategy, growth_metrics, inactivity_metrics
from clgrow.strategies.evaluation import PER_ITERATION
from tests.helpers import sites
from tests.strategies.conftest import fast_plugin


@pytest.fixture()
def run(split_digits, tmp_path):
    model = mlp(split_digits.in_features, [8, 8], split_digits.num_classes)
    writer = ResultsWriter(tmp_path)
    evaluator = EvaluationPlugin(
        accuracy_metrics(experience=True, stream=True),
        forgetting_metrics(experience=True, stream=True),
        *inactivity_metrics(tau=0.1),
        *growth_metrics(),
        loggers=[writer],
    )
    plugin = fast_plugin(neurons_per_experience=6)
    strategy = build_strategy(
        "naive", model, None, plugins=[plugin], evaluator=evaluator, train_mb_size=32, train_epochs=2, lr=1e-2
    )
    for exp in split_digits.scenario.train_stream[:3]:
        strategy.train(exp)
        strategy.eval(split_digits.scenario.test_stream)
    return model, writer, plugin, tmp_path


def test_inactivity_metric_matches_measure_inactivity(run, split_digits):
    model, writer, plugin, _ = run
    probe = DataLoader(ConcatDataset([e.dataset.eval() for e in split_digits.scenario.test_stream]), batch_size=100)
    stats = measure_inactivity(model, probe, tau=0.1)
    last = writer.last()
    base = "/eval_phase/test_stream"
    assert last["NeuronDead" + base] == pytest.approx(stats.dead_fraction)
    assert last["NeuronDormant" + base] == pytest.approx(stats.dormant_fraction)
    assert last["NewNeuronDead" + base] == pytest.approx(stats.new_dead_fraction)
    assert last["NewNeuronDormant" + base] == pytest.approx(stats.new_dormant_fraction)
    for i, layer in enumerate(stats.layers):
        assert last[f"NeuronDormant{base}/layer{i}"] == pytest.approx(layer.dormant / layer.units)
    # cohorts are named by the experience that added them
    assert {k.rsplit("/", 1)[1] for k in last if k.startswith("NeuronDead" + base + "/cohort")} == {
        "cohort_initial",
        "cohort_exp1",
        "cohort_exp2",
    }
    assert plugin.cohort_experience == {0: -1, 1: 1, 2: 2}


def test_growth_metrics(run):
    model, writer, _plugin, _ = run
    sizes = writer.series("HiddenUnits/train_phase/train_stream")
    assert sizes == {0: 16.0, 1: 22.0, 2: 28.0}
    last = writer.last()
    assert [last[f"HiddenSizes/train_phase/train_stream/layer{i}"] for i in range(2)] == sites(model).hidden_sizes
    alloc = sum(v for k, v in last.items() if k.startswith("GrowthAllocation"))
    assert alloc == 6
    assert last["GrowthTime/train_phase/train_stream"] == pytest.approx(
        last["GrowthTime/train_phase/train_stream/distributor"] + last["GrowthTime/train_phase/train_stream/extender"]
    )


def test_results_writer_keeps_everything(run):
    _, writer, _, out = run
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    metrics = {r["metric"] for r in rows}
    assert "StreamForgetting/eval_phase/test_stream" in metrics
    assert "NeuronDormant/eval_phase/test_stream" in metrics
    assert "Top1_Acc_Stream/eval_phase/test_stream/Task000" in metrics
    exps = {int(r["experience"]) for r in rows if r["metric"] == "NeuronDead/eval_phase/test_stream"}
    assert exps == {0, 1, 2}
    summary = json.loads((out / "metrics.json").read_text())
    assert set(summary["by_experience"]["NeuronDead/eval_phase/test_stream"]) == {"0", "1", "2"}
    assert (
        summary["last"]["StreamForgetting/eval_phase/test_stream"]
        == writer.last()["StreamForgetting/eval_phase/test_stream"]
    )


def test_metric_validates_tau():
    with pytest.raises(ValueError, match="tau"):
        inactivity_metrics(tau=-0.5)


def test_lean_evaluation_plugin_logs_exactly_what_avalanches_logs(split_digits):
    """Same run, same seed: every value of every metric (training-phase per-iteration ones
    included) is logged identically, at the same x; only callbacks nobody acts on are skipped."""
    import torch
    from avalanche.evaluation import PluginMetric
    from avalanche.evaluation.metrics import loss_metrics

    from clgrow.strategies import LeanEvaluationPlugin

    class CountsForwards(PluginMetric):  # a metric acting on a callback the usual metrics ignore
        def __init__(self):
            super().__init__()
            self.forwards = 0

        def result(self):
            return self.forwards

        def reset(self):
            pass

        def before_forward(self, strategy):
            self.forwards += 1

    def one(kind):
        torch.manual_seed(0)
        model = mlp(split_digits.in_features, [8, 8], split_digits.num_classes)
        writer, counter = ResultsWriter(None), CountsForwards()
        evaluator = kind(
            accuracy_metrics(minibatch=True, epoch=True, experience=True, stream=True),
            loss_metrics(minibatch=True, epoch=True, stream=True),
            forgetting_metrics(experience=True, stream=True),
            *inactivity_metrics(tau=0.1),
            *growth_metrics(),
            counter,
            loggers=[writer],
        )
        strategy = build_strategy(
            "naive",
            model,
            fast_plugin(neurons_per_experience=6).config,
            evaluator=evaluator,
            train_mb_size=32,
            train_epochs=2,
            lr=1e-2,
        )
        for exp in split_digits.scenario.train_stream[:3]:
            strategy.train(exp)
            strategy.eval(split_digits.scenario.test_stream)
        writer.last()  # flush
        return [r for r in writer.rows if not r["metric"].startswith("GrowthTime")], counter.forwards, evaluator

    ref, ref_forwards, _ = one(EvaluationPlugin)
    lean, lean_forwards, plugin = one(LeanEvaluationPlugin)
    assert len(ref) > 100 and lean == ref
    assert ref_forwards == lean_forwards > 0
    # minibatch metrics act on training iterations; no metric acts on the backward pass
    assert getattr(plugin.after_training_iteration, "__name__", "") != "_ignore"
    assert getattr(plugin.after_backward, "__name__", "") == "_ignore"


def test_lean_evaluation_plugin_skips_per_iteration_callbacks_of_stream_metrics():
    from clgrow.strategies import LeanEvaluationPlugin

    plugin = LeanEvaluationPlugin(
        accuracy_metrics(experience=True, stream=True), *inactivity_metrics(), loggers=[ResultsWriter(None)]
    )
    skipped = {c for c in PER_ITERATION if getattr(getattr(plugin, c), "__name__", "") == "_ignore"}
    # every per-iteration callback but after_eval_iteration, where the accuracy counts
    assert skipped == set(PER_ITERATION) - {"after_eval_iteration"}
    assert getattr(plugin.after_eval_iteration, "__name__", "") != "_ignore"  # accuracy updates there
    assert callable(plugin.before_inner_updates)  # other templates' callbacks: forwarded as Avalanche does


def test_lean_evaluation_plugin_survives_checkpoint_pickling():
    import copy
    import pickle

    import dill

    from clgrow.strategies import LeanEvaluationPlugin

    plugin = LeanEvaluationPlugin(accuracy_metrics(stream=True), *inactivity_metrics(), loggers=[ResultsWriter(None)])
    for clone in (pickle.loads(pickle.dumps(plugin)), dill.loads(dill.dumps(plugin)), copy.deepcopy(plugin)):
        assert getattr(clone.before_forward, "__name__", "") == "_ignore"
        assert clone.after_eval_iteration.plugin is clone  # forwards to the copy, not the original
