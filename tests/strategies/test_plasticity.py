"""PlasticityPlugin on Avalanche strategies: every plasticity method with every growth method,
what the per-step methods see, resets before growth, metrics and summary, checkpoints."""

from __future__ import annotations

import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics
from avalanche.training.plugins import EvaluationPlugin

from clgrow import GrowthError, PlasticityMethod, UniformDistributor, extenders, mlp, plasticity_methods
from clgrow.strategies import (
    PlasticityPlugin,
    ResultsWriter,
    RunSummary,
    build_strategy,
    growth_metrics,
    inactivity_metrics,
    names,
)
from clgrow.strategies.plasticity import find_plasticity_plugin
from tests.helpers import sites
from tests.strategies.conftest import fast_plugin, quiet
from tests.strategies.test_checkpoint import _run as _checkpointed_run
from tests.strategies.test_plugin import OptimizerCoverage

#: settings that reset something within a few dozen steps of split-digits
EAGER = {"redo": dict(tau=0.3, every=4), "cbp": dict(replacement_rate=0.05, maturity=3)}


def _evaluator():
    writer = ResultsWriter()
    return writer, EvaluationPlugin(
        accuracy_metrics(experience=True, stream=True),
        forgetting_metrics(experience=True, stream=True),
        *inactivity_metrics(),
        *growth_metrics(),
        loggers=[writer],
    )


def test_eager_settings_cover_every_registered_method():
    assert set(EAGER) == set(plasticity_methods)


@pytest.mark.parametrize("extender", sorted(extenders))
@pytest.mark.parametrize("method", sorted(plasticity_methods))
def test_every_plasticity_method_with_every_growth_method(split_digits, method, extender):
    """Growth and resets together: the optimizer covers the model at every step, resets happen in
    grown layers too, and the labels of reset units follow the widths."""
    torch.manual_seed(0)
    model = mlp(split_digits.in_features, [8, 8], split_digits.num_classes)
    coverage = OptimizerCoverage()
    grow = fast_plugin(extender=extender, distributor=UniformDistributor())
    strategy = build_strategy(
        "naive",
        model,
        None,
        plugins=[coverage, grow],
        evaluator=quiet(),
        train_mb_size=32,
        plasticity=method,
        plasticity_kwargs=EAGER[method],
    )
    resets = next(p for p in strategy.plugins if isinstance(p, PlasticityPlugin))
    for exp in split_digits.scenario.train_stream[:3]:
        strategy.train(exp)
    assert sites(model).hidden_sizes == [12, 12] and len(grow.events) == 2  # uniform: 2 + 2 units, twice
    assert coverage.checks and all(coverage.checks)
    assert sum(resets.units_reset(e) for e in range(3)) > 0
    labels = resets.reset_labels(model)
    assert [lab.numel() for lab in labels] == sites(model).hidden_sizes
    assert int(sum((lab >= 0).sum() for lab in labels)) > 0
    assert all(torch.isfinite(p).all() for p in model.parameters())


class _Recorder(PlasticityMethod):
    """Resets nothing; records what the plugin hands a per-step method."""

    needs_steps = True

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.shapes: list[list[tuple[int, int]]] = []

    def after_step(self, model, step, activations, optimizer=None):
        self.steps.append(step)
        self.shapes.append([tuple(a.shape) for a in activations])
        return {}


def test_per_step_methods_see_each_training_batch_once_not_growth_or_evaluation(split_digits):
    torch.manual_seed(0)
    model = mlp(split_digits.in_features, [8, 8], split_digits.num_classes)
    recorder = _Recorder()
    plugin = PlasticityPlugin(recorder)
    strategy = build_strategy(
        "naive",
        model,
        None,
        plugins=[plugin, fast_plugin(distributor=UniformDistributor())],
        evaluator=quiet(),
        train_mb_size=50,
        train_epochs=1,
    )
    exp = split_digits.scenario.train_stream[1]
    strategy.train(split_digits.scenario.train_stream[0])
    recorder.steps.clear()
    recorder.shapes.clear()
    strategy.train(exp)  # grows at its start (SVoD's and SWE's passes run forward too)
    strategy.eval(split_digits.scenario.test_stream[:2])
    batches = -(-len(exp.dataset) // 50)
    assert recorder.steps == list(range(1, batches + 1))
    assert all(s == [(s[0][0], 10), (s[0][0], 10)] for s in recorder.shapes)  # the grown widths
    assert sum(s[0][0] for s in recorder.shapes) == len(exp.dataset)


def test_redo_resets_at_the_experience_start_before_growth(split_digits):
    torch.manual_seed(0)
    model = mlp(split_digits.in_features, [8, 8], split_digits.num_classes)
    grow = fast_plugin(distributor=UniformDistributor())
    strategy = build_strategy(
        "naive",
        model,
        None,
        plugins=[grow],
        evaluator=quiet(),
        train_mb_size=32,
        plasticity="redo",
        plasticity_kwargs={"tau": 0.5},
    )
    resets = next(p for p in strategy.plugins if isinstance(p, PlasticityPlugin))
    assert strategy.plugins.index(resets) < strategy.plugins.index(grow)
    strategy.train(split_digits.scenario.train_stream[0])
    assert resets.units_reset(0) == 0  # from_experience = 1
    strategy.train(split_digits.scenario.train_stream[1])
    assert resets.units_reset(1) > 0
    for lab in resets.reset_labels(model):
        assert (lab[8:] == -1).all()  # units grown after the resets were never reset


def test_summary_carries_learning_accuracy_resets_and_reset_cohorts(split_digits):
    torch.manual_seed(0)
    model = mlp(split_digits.in_features, [8, 8], split_digits.num_classes)
    writer, evaluator = _evaluator()
    strategy = build_strategy(
        "naive",
        model,
        "random-uniform",
        evaluator=evaluator,
        train_mb_size=32,
        neurons_per_experience=4,
        plasticity="redo",
        plasticity_kwargs=EAGER["redo"],
    )
    n = 3
    for exp in split_digits.scenario.train_stream[:n]:
        strategy.train(exp)
        strategy.eval(split_digits.scenario.test_stream[:n])
    s = RunSummary.collect(
        strategy,
        writer,
        task_labels=[0] * n,
        benchmark="split-digits",
        strategy_name="naive",
        growth="random-uniform",
        seed=0,
        plasticity="redo",
    )
    diag = [s.accuracy_matrix[i][i] for i in range(n)]
    assert s.learning_accuracy == pytest.approx(sum(diag) / n)
    plugin = next(p for p in strategy.plugins if isinstance(p, PlasticityPlugin))
    assert s.units_reset == [plugin.units_reset(i) for i in range(n)] and sum(s.units_reset) > 0
    assert s.reset_dormant and all(len(v) == n for v in s.reset_dormant.values())
    assert writer.series(names.train_name(names.UNITS_RESET)) == {i: float(c) for i, c in enumerate(s.units_reset)}
    # read back, and an older summary without the field gets it from its matrix
    d = s.to_dict()
    assert RunSummary.from_dict(d).to_dict() == d
    del d["learning_accuracy"]
    assert RunSummary.from_dict(d).learning_accuracy == pytest.approx(s.learning_accuracy)
    assert s.method == "random-uniform / redo"


@pytest.mark.parametrize("method", sorted(plasticity_methods))
def test_resets_and_growth_on_avalanche_simple_mlp(split_digits, method):
    """A model clgrow did not build: its units are reset and grown in place, the optimizer covers
    it at every step, and the inactivity metrics report its layers."""
    from avalanche.models import SimpleMLP

    torch.manual_seed(0)
    model = SimpleMLP(num_classes=10, input_size=64, hidden_size=8, hidden_layers=2)
    coverage = OptimizerCoverage()
    writer, evaluator = _evaluator()
    strategy = build_strategy(
        "naive",
        model,
        None,
        plugins=[fast_plugin(), coverage],
        plasticity=method,
        plasticity_kwargs=EAGER[method],
        evaluator=evaluator,
        train_mb_size=32,
    )
    for i, exp in enumerate(split_digits.scenario.train_stream[:3]):
        strategy.train(exp)
        strategy.eval(split_digits.scenario.test_stream[: i + 1])
    resets = find_plasticity_plugin(strategy)
    assert resets is not None and sum(resets.units_reset(e) for e in range(3)) > 0
    assert all(coverage.checks) and model.features[0].weight.shape[0] > 8
    assert any(k.startswith("NeuronDormant/eval_phase/test_stream/layer1") for k in writer.last())


def test_resets_refuse_a_model_without_a_site_and_reference_rows(split_digits):
    tanh = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.Tanh(), torch.nn.Linear(8, 10))
    strategy = build_strategy("naive", tanh, None, plasticity="redo", evaluator=quiet(), train_mb_size=32)
    with pytest.raises(GrowthError, match=r"no growth site(.|\n)*goes to Tanh"):
        strategy.train(split_digits.scenario.train_stream[0])
    model = mlp(split_digits.in_features, [8], split_digits.num_classes)
    with pytest.raises(GrowthError, match="reference without growth or resets"):
        build_strategy("joint", model, None, plasticity="cbp")
    with pytest.raises(GrowthError, match="plasticity is 'none'"):
        build_strategy("naive", model, None, plasticity_kwargs={"tau": 0.1})


@pytest.mark.parametrize("method", sorted(plasticity_methods))
def test_interrupted_run_with_resets_resumes_bit_identically(split_digits, tmp_path, method):
    def run(path, stop_after=None):
        out = _checkpointed_run(split_digits, path, stop_after, plasticity=method, plasticity_kwargs=EAGER[method])
        if out is None:
            return None
        plugin = next(p for p in out["plugins"] if isinstance(p, PlasticityPlugin))
        assert out["all_optimized"]
        return out["state"], plugin.state_dict(), out["metrics"]

    straight = run(tmp_path / "a.pkl")
    assert run(tmp_path / "b.pkl", stop_after=1) is None
    resumed = run(tmp_path / "b.pkl")
    assert sum(sum(c.values()) for c in straight[1]["counts"].values()) > 0
    assert straight[0].keys() == resumed[0].keys()
    for k, v in straight[0].items():
        assert torch.equal(v, resumed[0][k]), k
    assert straight[1]["counts"] == resumed[1]["counts"]
    assert all(torch.equal(a, b) for a, b in zip(straight[1]["last_reset"], resumed[1]["last_reset"]))
    assert {k: v for k, v in straight[2].items() if "Time" not in k} == {
        k: v for k, v in resumed[2].items() if "Time" not in k
    }
