"""GrowPlugin with Avalanche 0.6: optimizer coverage, when growth happens, which data it sees."""

from __future__ import annotations

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.models import SimpleMLP
from avalanche.training.plugins import LRSchedulerPlugin
from hypothesis import given, settings
from hypothesis import strategies as st

from clgrow import Distributor, GrowthError, UniformDistributor, mlp
from clgrow.strategies import STRATEGIES, GrowPlugin, build_strategy
from clgrow.strategies.declared import reference_strategies
from tests.helpers import producer, sites, task_mlp
from tests.strategies.conftest import all_params_optimized, fast_plugin, quiet

REFERENCE_STRATEGIES = reference_strategies()

_HP = {
    "replay": dict(mem_size=60),
    "agem": dict(patterns_per_exp=20, sample_size=16),
    "gem": dict(patterns_per_exp=20),
    "ewc": dict(ewc_lambda=10.0),
    "si": dict(si_lambda=0.1),
    "der": dict(mem_size=60),
    "er-ace": dict(mem_size=60),
    "mir": dict(mem_size=60, subsample=20),
}


def make(*args, **kwargs):
    """build_strategy with a quiet evaluator."""
    kwargs.setdefault("evaluator", quiet())
    return build_strategy(*args, **kwargs)


class OptimizerCoverage(SupervisedPlugin):
    """Records, at every training iteration, whether the optimizer covers the model exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.checks: list[bool] = []

    def before_training_iteration(self, strategy, **kwargs):
        self.checks.append(all_params_optimized(strategy))


def _run(strategy, bm, n_exp=3):
    for exp in bm.scenario.train_stream[:n_exp]:
        strategy.train(exp)
        strategy.eval(bm.scenario.test_stream[:n_exp])


@pytest.mark.parametrize("name", sorted(set(STRATEGIES) - set(REFERENCE_STRATEGIES)))
@pytest.mark.parametrize("opt_name", ["adam", "sgd-momentum"])
def test_every_parameter_optimized_after_growth(split_digits, name, opt_name):
    model = mlp(split_digits.in_features, [8, 8, 8], split_digits.num_classes)
    if opt_name == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    coverage = OptimizerCoverage()
    sched = LRSchedulerPlugin(torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9))
    plugin = fast_plugin(distributor=UniformDistributor())  # uniform: every layer grows, every step
    strategy = make(
        name,
        model,
        None,
        optimizer=opt,
        train_mb_size=32,
        train_epochs=1,
        plugins=[plugin, coverage, sched],
        **_HP.get(name, {}),
    )
    _run(strategy, split_digits)
    assert sites(model).hidden_sizes == [12, 10, 10]  # uniform 4 = 2 + 1 + 1, twice
    assert len(plugin.events) == 2
    assert coverage.checks and all(coverage.checks)
    assert strategy.optimizer is opt  # the user's optimizer object is kept (schedulers hold it)


def test_growth_only_while_training(split_digits):
    model = mlp(split_digits.in_features, [8, 8], split_digits.num_classes)
    plugin = fast_plugin(grow_from_experience=0)
    strategy = make("naive", model, None, plugins=[plugin], train_mb_size=32)
    strategy.eval(split_digits.scenario.test_stream)
    assert sites(model).hidden_sizes == [8, 8] and not plugin.events
    strategy.train(split_digits.scenario.train_stream[0])
    sizes = sites(model).hidden_sizes
    strategy.eval(split_digits.scenario.test_stream)
    assert sites(model).hidden_sizes == sizes and sum(sizes) == 20 and len(plugin.events) == 1


class RecordingDistributor(Distributor):
    """Uniform allocation that records the labels of the growth data it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: list[set[int]] = []

    def allocate(self, model, k, loader=None, loss_fn=None, layers=None):
        seen = set()
        for batch in loader:
            seen |= set(batch[1].tolist())
        self.labels.append(seen)
        return UniformDistributor().allocate(model, k, layers=layers)


def test_growth_data_includes_replay_samples(split_digits):
    model = mlp(split_digits.in_features, [8, 8], split_digits.num_classes)
    dist = RecordingDistributor()
    plugin = fast_plugin(distributor=dist)
    strategy = make("replay", model, None, plugins=[plugin], mem_size=40, train_mb_size=16)
    _run(strategy, split_digits, 2)
    stream = split_digits.scenario.train_stream
    current = set(stream[1].classes_in_this_experience)
    previous = set(stream[0].classes_in_this_experience)
    assert dist.labels == [current | previous]


def test_growth_within_an_experience_every_n_epochs(split_digits):
    model = mlp(split_digits.in_features, [8, 8], split_digits.num_classes)
    plugin = fast_plugin(grow_every_epochs=2, grow_from_experience=1)
    coverage = OptimizerCoverage()
    strategy = make("naive", model, None, plugins=[plugin, coverage], train_epochs=5, train_mb_size=32)
    strategy.train(split_digits.scenario.train_stream[0])
    assert [(e.experience, e.epoch) for e in plugin.events] == [(0, 2), (0, 4)]
    assert sum(sites(model).hidden_sizes) == 16 + 8 and all(coverage.checks)
    assert sites(model).cohort(0).max() == 2


def test_neurons_per_experience_callable_and_cap(split_digits):
    model = mlp(split_digits.in_features, [8, 8], split_digits.num_classes)
    plugin = fast_plugin(neurons_per_experience=lambda e: 3 * e, max_hidden_size=11, distributor="uniform")
    strategy = make("naive", model, None, plugins=[plugin], train_mb_size=32)
    _run(strategy, split_digits, 4)
    # room is 2 x 3 units: exp 1 adds 3, exp 2 asks 6 but gets the 3 left, exp 3 adds nothing
    assert [e.report.added for e in plugin.events] == [3, 3]
    assert sites(model).hidden_sizes == [11, 11]


def test_head_grows_for_new_classes(split_digits):
    model = mlp(split_digits.in_features, [8, 8], 2)
    plugin = fast_plugin(grow_head=True)
    coverage = OptimizerCoverage()
    strategy = make("naive", model, None, plugins=[plugin, coverage], train_mb_size=32)
    stream = split_digits.scenario.train_stream
    strategy.train(stream[0])
    assert sites(model).num_classes == max(stream[0].classes_in_this_experience) + 1
    strategy.eval(split_digits.scenario.test_stream)  # all classes evaluated: head covers them
    assert sites(model).num_classes == 10
    strategy.train(stream[1])
    assert all(coverage.checks) and sum(sites(model).hidden_sizes) == 20


def test_task_incremental_multi_head(split_digits_tasks):
    bm = split_digits_tasks
    model = task_mlp(bm.in_features, [8, 8], bm.head_size)
    coverage = OptimizerCoverage()
    plugin = fast_plugin()
    strategy = make("naive", model, None, plugins=[plugin, coverage], train_mb_size=32)
    _run(strategy, bm, 3)
    heads = model.classifier.classifiers  # Avalanche's MultiHeadClassifier: one head per task
    assert sorted(heads, key=int) == ["0", "1", "2"]
    assert all(h.classifier.in_features == sites(model).hidden_sizes[-1] for h in heads.values())
    assert all(coverage.checks) and sum(sites(model).hidden_sizes) == 24
    x = torch.stack([bm.scenario.test_stream[1].dataset[i][0] for i in range(4)])
    out1, out0 = model(x, torch.ones(4, dtype=torch.long)), model(x, torch.zeros(4, dtype=torch.long))
    assert out1.shape == (4, 2) and not torch.allclose(out0, out1)


def test_avalanche_simple_mlp_grows_in_place_with_its_own_dropout(split_digits):
    model = SimpleMLP(num_classes=10, input_size=64, hidden_size=8, hidden_layers=2, drop_rate=0.5)
    first, dropouts = model.features[0], [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    coverage = OptimizerCoverage()
    strategy = make("replay", model, None, plugins=[fast_plugin(), coverage], train_mb_size=32, mem_size=60)
    _run(strategy, split_digits, n_exp=3)
    assert strategy.model is model and model.features[0] is first
    widths = [m.weight.shape[0] for m in model.modules() if isinstance(m, torch.nn.Linear)][:-1]
    assert sum(widths) == 16 + 2 * 4 and model.classifier.in_features == widths[-1]
    assert [m for m in model.modules() if isinstance(m, torch.nn.Dropout)] == dropouts and dropouts[0].p == 0.5
    assert coverage.checks and all(coverage.checks)


def test_model_without_a_site_fails_at_its_first_growth_naming_its_layers(split_digits):
    model = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.Tanh(), torch.nn.Linear(8, 10))
    strategy = make("naive", model, None, plugins=[fast_plugin()], train_mb_size=32)
    strategy.train(split_digits.scenario.train_stream[0])  # nothing grows at the first experience
    with pytest.raises(GrowthError, match=r"no growth site(.|\n)*goes to Tanh"):
        strategy.train(split_digits.scenario.train_stream[1])
    assert model[0].weight.shape == (8, 64)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(neurons_per_experience=-1),
        dict(neurons_per_experience=2.5),
        dict(grow_every_epochs=0),
        dict(extender="nope"),
        dict(max_hidden_size=0),
    ],
)
def test_plugin_arguments_validated(kwargs):
    with pytest.raises(GrowthError):
        GrowPlugin(**kwargs)


def test_optimizer_state_of_old_entries_is_carried(split_digits):
    """Carried (no restart at the experience): old entries keep their moments; new rows take each
    column's mean second moment over the old rows (a zero one would make their steps several
    learning rates long) and a zero first moment."""
    model = mlp(split_digits.in_features, [8, 8], split_digits.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    plugin = fast_plugin(distributor="uniform")
    strategy = make("naive", model, None, optimizer=opt, plugins=[plugin], train_mb_size=32, reset_optimizer=False)
    strategy.train(split_digits.scenario.train_stream[0])
    before = opt.state[producer(model, 0).weight]["exp_avg_sq"].clone()
    snapshot = {}

    class Peek(SupervisedPlugin):
        def before_training_iteration(self, strategy, **kw):
            if not snapshot:
                snapshot["v"] = opt.state[producer(model, 0).weight]["exp_avg_sq"].clone()

    strategy.plugins.append(Peek())
    strategy.train(split_digits.scenario.train_stream[1])
    grown = snapshot["v"]
    assert grown.shape == (10, 64)
    assert torch.equal(grown[:8], before)
    assert torch.allclose(grown[8:], before.mean(0, keepdim=True).expand(2, 64))
    assert bool((before.mean(0) > 0).any())


def test_optimizer_state_restarts_at_every_experience(split_digits):
    """By default (reset_optimizer=True) every parameter's state is empty when an experience's
    first step runs, growth or not; with reset_optimizer=False it is carried."""

    class Peek(SupervisedPlugin):
        """Counts the parameters with optimizer state when each experience's first step runs."""

        def __init__(self) -> None:
            super().__init__()
            self.seen: list[int] = []

        def before_training_iteration(self, strategy, **kw):
            if strategy.clock.train_exp_iterations == 0:
                opt = strategy.optimizer
                self.seen.append(sum(1 for p in strategy.model.parameters() if opt.state.get(p)))

    for reset, growth in ((True, "random+uniform"), (True, "none"), (False, "none")):
        model = mlp(split_digits.in_features, [8, 8], split_digits.num_classes)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        peek = Peek()
        strategy = make("naive", model, growth, optimizer=opt, plugins=[peek], train_mb_size=64, reset_optimizer=reset)
        for exp in split_digits.scenario.train_stream[:2]:
            strategy.train(exp)
        n = len(list(model.parameters()))
        assert peek.seen == ([0, 0] if reset else [0, n]), (reset, growth, peek.seen)
    with pytest.raises(GrowthError, match="reset_optimizer"):
        make("naive", mlp(4, [3], 2), "none", reset_optimizer="yes")


def test_build_strategy_names_bad_input():
    model = mlp(4, [3], 2)
    with pytest.raises(GrowthError, match="unknown strategy 'foo'"):
        make("foo", model)
    with pytest.raises(GrowthError, match="unknown growth 'bar'"):
        make("naive", model, "bar")
    with pytest.raises(GrowthError, match="unknown distributor 'x'"):
        make("naive", model, "swe+x")
    with pytest.raises(GrowthError, match="strategy 'naive'"):
        make("naive", model, "none", mem_size=3)
    plugins = make("naive", model, "random+uniform").plugins
    assert [type(p.extender).__name__ for p in plugins if isinstance(p, GrowPlugin)] == ["RandomExtender"]
    from clgrow.strategies import build_optimizer

    with pytest.raises(GrowthError, match="sgd optimizer only"):
        build_optimizer("adam", model, 1e-3, momentum=0.9)  # ignored silently before
    assert build_optimizer("sgd", model, 1e-3, momentum=0.5).param_groups[0]["momentum"] == 0.5


@settings(max_examples=8, deadline=None)
@given(
    widths=st.lists(st.integers(1, 12), min_size=1, max_size=4),
    k=st.integers(1, 9),
    opt_name=st.sampled_from(["adam", "sgd", "rmsprop"]),
    dist=st.sampled_from(["uniform", "svod", "proportional"]),
)
def test_optimizer_covers_every_parameter_for_random_shapes(split_digits, widths, k, opt_name, dist):
    model = mlp(split_digits.in_features, widths, split_digits.num_classes)
    opt = {
        "adam": lambda p: torch.optim.Adam(p, lr=1e-3),
        "sgd": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
        "rmsprop": lambda p: torch.optim.RMSprop(p, lr=1e-3),
    }[opt_name](model.parameters())
    coverage = OptimizerCoverage()
    plugin = fast_plugin(neurons_per_experience=k, distributor=dist)
    strategy = make("naive", model, None, optimizer=opt, plugins=[plugin, coverage], train_mb_size=64)
    for exp in split_digits.scenario.train_stream[:2]:
        strategy.train(exp)
    assert sum(sites(model).hidden_sizes) == sum(widths) + k
    assert coverage.checks and all(coverage.checks)


@pytest.mark.parametrize("name", REFERENCE_STRATEGIES)
def test_reference_strategies_refuse_growth(split_digits, name):
    model = mlp(split_digits.in_features, [8], split_digits.num_classes)
    with pytest.raises(GrowthError, match=f"strategy '{name}' is a reference without growth"):
        make(name, model, "swe-svod")


def test_pnn_needs_its_own_model(split_digits):
    model = mlp(split_digits.in_features, [8], split_digits.num_classes)
    with pytest.raises(GrowthError, match="PNN model"):
        make("pnn", model, "none")


def test_der_with_a_growing_head_is_refused(split_digits):
    model = mlp(split_digits.in_features, [8], 2)
    with pytest.raises(GrowthError, match="'der' replays stored logits"):
        make("der", model, "swe-svod", grow_head=True)
