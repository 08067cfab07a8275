"""Pruning in a stream: dead units leave before growth, every optimizer and regulariser state follows."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clgrow import mlp
from clgrow.strategies import build_strategy
from clgrow.strategies.prune_plugin import PrunePlugin, find_prune_plugin
from tests.helpers import producer, sites
from tests.strategies.conftest import all_params_optimized, quiet


def _kill_half(model: nn.Module) -> None:
    with torch.no_grad():
        for i in range(sites(model).num_hidden_layers):
            lin = producer(model, i)
            half = lin.out_features // 2
            lin.weight[:half] = 0.0
            lin.bias[:half] = -1.0


@pytest.mark.parametrize(
    "name, hp", [("ewc", {"ewc_lambda": 1.0}), ("si", {}), ("mas", {}), ("rwalk", {}), ("replay", {"mem_size": 50})]
)
def test_a_stream_prunes_dead_units_and_keeps_every_state_aligned(split_digits, name, hp):
    """Half of each layer is dead from the start: those units leave at experience 1, the regulariser's
    per-parameter state is sliced with them (its penalty still computes), growth follows."""
    bm = split_digits
    model = mlp(bm.in_features, [12, 12], bm.num_classes)
    _kill_half(model)
    strategy = build_strategy(
        name, model, "random-uniform", neurons_per_experience=4, train_mb_size=64, evaluator=quiet(), prune="drop", **hp
    )
    stream = list(bm.scenario.train_stream)[:3]
    for exp in stream:
        strategy.train(exp)
        assert all_params_optimized(strategy)
    pruner = find_prune_plugin(strategy)
    assert isinstance(pruner, PrunePlugin)
    assert pruner.units_pruned(0) == 0 and pruner.units_pruned(1) >= 12  # the 6 dead units of each layer
    first = pruner.events[0].report
    assert all(set(range(6)) <= set(first.removed[i].tolist()) for i in (0, 1))
    from clgrow.strategies import GrowPlugin

    grower = next(p for p in strategy.plugins if isinstance(p, GrowPlugin))
    for layer in (0, 1):  # widths = initial - pruned + grown, layer by layer
        pruned = sum(e.report.removed.get(layer, torch.empty(0)).numel() for e in pruner.events)
        grown = sum(e.report.allocation.get(layer, 0) for e in grower.events)
        assert sites(model).hidden_sizes[layer] == 12 - pruned + grown
    for layer in range(sites(model).num_hidden_layers):  # cohorts follow the units that stay
        assert sites(model).cohort(layer).numel() == sites(model).hidden_sizes[layer]


def test_pruning_with_continual_backprop_slices_its_utilities_and_ages(split_digits):
    """CBP's per-unit state and the reset labels follow the units that stay (no refusal any more)."""
    from clgrow.strategies.plasticity import find_plasticity_plugin

    bm = split_digits
    model = mlp(bm.in_features, [12, 12], bm.num_classes)
    _kill_half(model)
    strategy = build_strategy(
        "naive",
        model,
        "random-uniform",
        neurons_per_experience=4,
        train_mb_size=64,
        prune="drop",
        plasticity="cbp",
        plasticity_kwargs={"maturity": 1, "replacement_rate": 0.01},
        evaluator=quiet(),
    )
    for exp in list(bm.scenario.train_stream)[:3]:
        strategy.train(exp)
        resets = find_plasticity_plugin(strategy)
        assert resets is not None
        cbp = resets.resetter
        for layer, n in enumerate(sites(model).hidden_sizes):  # after growth the state may lag (synced lazily)
            assert cbp.utility[layer].numel() <= n and cbp.age[layer].numel() <= n
    pruner = find_prune_plugin(strategy)
    assert pruner is not None and pruner.units_pruned(1) >= 12
    ages = cbp.age[0]
    assert ages.numel() == sites(model).hidden_sizes[0]  # synced at the last step: one age per unit that stayed


def test_pruning_is_refused_for_reference_rows_and_unknown_names(split_digits):
    from clgrow import GrowthError

    bm = split_digits
    with pytest.raises(GrowthError, match="reference"):
        build_strategy("joint", mlp(bm.in_features, [8], bm.num_classes), "none", prune="drop", evaluator=quiet())
    with pytest.raises(GrowthError, match="unknown selector"):
        PrunePlugin("sideways")
    with pytest.raises(GrowthError, match="unknown method"):
        PrunePlugin("dead", method="merge")


def test_swe_prunes_in_a_stream_records_its_disruption_and_growth_refills_the_budget(split_digits):
    """Dormant units leave by SWE's transfer; each prune's disruption is measured on held-out
    probes; under max_params growth adds only what fits, so pruned room is regrown."""
    from clgrow.strategies import GrowPlugin

    bm = split_digits
    torch.manual_seed(0)
    model = mlp(bm.in_features, [16, 16], bm.num_classes)
    _kill_half(model)
    start = sum(p.numel() for p in model.parameters())
    budget = start + 300
    strategy = build_strategy(
        "replay",
        model,
        "random-uniform",
        neurons_per_experience=16,
        max_params=budget,
        mem_size=60,
        train_mb_size=64,
        prune="swe",
        prune_select="dormant",
        prune_tau=0.1,
        evaluator=quiet(),
    )
    sizes = []
    for exp in list(bm.scenario.train_stream)[:3]:
        strategy.train(exp)
        assert sum(p.numel() for p in model.parameters()) <= budget
        assert all_params_optimized(strategy)
        sizes.append(sum(sites(model).hidden_sizes))
    pruner = find_prune_plugin(strategy)
    grower = next(p for p in strategy.plugins if isinstance(p, GrowPlugin))
    assert pruner is not None and pruner.events and all(e.report.method == "swe" for e in pruner.events)
    first = pruner.events[0]
    assert [c.experience for c in first.disruption] == [0] and first.disruption_drop is not None
    assert pruner.disruption(first.experience) == first.disruption_drop
    assert all(not torch.equal(h.x, p.x) for h, p in zip(pruner.held, pruner.probes))  # disjoint samples
    # growth was held by the budget, and the units pruned at experience 1 were grown back
    assert sum(e.report.added for e in grower.events) < 16 * len(grower.events)
    assert pruner.units_pruned(1) > 0 and grower.events[0].report.added > 0


def test_max_params_below_the_model_is_refused(split_digits):
    from clgrow import GrowthError

    bm = split_digits
    model = mlp(bm.in_features, [8], bm.num_classes)
    strategy = build_strategy("naive", model, "random-uniform", max_params=10, evaluator=quiet())
    with pytest.raises(GrowthError, match="max_params=10 is below the model's"):
        strategy.train(bm.scenario.train_stream[0])


def test_units_pruned_is_an_avalanche_metric_per_layer(split_digits):
    from avalanche.training.plugins import EvaluationPlugin

    from clgrow.strategies import ResultsWriter, growth_metrics

    bm = split_digits
    model = mlp(bm.in_features, [12, 12], bm.num_classes)
    _kill_half(model)
    writer = ResultsWriter(None)
    strategy = build_strategy(
        "naive",
        model,
        "none",
        train_mb_size=64,
        prune="drop",
        evaluator=EvaluationPlugin(*growth_metrics(), loggers=[writer]),
    )
    for exp in list(bm.scenario.train_stream)[:2]:
        strategy.train(exp)
    pruner = find_prune_plugin(strategy)
    assert pruner is not None
    total = writer.series("UnitsPruned/train_phase/train_stream")
    assert total == {0: 0.0, 1: float(pruner.units_pruned(1))} and total[1] >= 12
    layer0 = writer.series("UnitsPruned/train_phase/train_stream/layer0")
    assert layer0[1] == float(pruner.events[0].report.removed[0].numel())
    # the prune's disruption on the experience seen before it, as logged and as recorded
    drop = writer.series("PruneDisruption/train_phase/train_stream")
    assert set(drop) == {1} and drop[1] == pruner.disruption(1)
    assert writer.series("PruneDisruption/train_phase/train_stream/exp0")[1] == pruner.events[0].disruption[0].drop


def test_regrow_pruned_grows_back_what_the_prune_removed(split_digits):
    bm = split_digits
    model = mlp(bm.in_features, [12, 12], bm.num_classes)
    _kill_half(model)
    strategy = build_strategy(
        "naive",
        model,
        "random-uniform",
        neurons_per_experience=4,
        regrow_pruned=True,
        train_mb_size=64,
        prune="drop",
        evaluator=quiet(),
    )
    for exp in list(bm.scenario.train_stream)[:3]:
        strategy.train(exp)
    pruner = find_prune_plugin(strategy)
    assert pruner is not None and pruner.units_pruned(1) >= 12
    # every unit pruned came back as a new one, next to the 4 per growth step
    assert sum(sites(model).hidden_sizes) == 24 + 4 * 2
