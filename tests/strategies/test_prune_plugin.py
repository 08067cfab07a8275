"""Pruning in a stream: dead units leave before growth, every optimizer and regulariser state follows."""

from __future__ import annotations

import pytest
import torch

from clgrow import GrowableMLP
from clgrow.strategies import build_strategy
from clgrow.strategies.prune_plugin import PrunePlugin, find_prune_plugin
from tests.strategies.conftest import all_params_optimized, quiet


def _kill_half(model: GrowableMLP) -> None:
    with torch.no_grad():
        for lin in model.hidden:
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
    model = GrowableMLP(bm.in_features, [12, 12], bm.num_classes)
    _kill_half(model)
    strategy = build_strategy(
        name, model, "random-uniform", neurons_per_experience=4, train_mb_size=64, evaluator=quiet(), prune="dead", **hp
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
        assert model.hidden_sizes[layer] == 12 - pruned + grown
    for layer in range(model.num_hidden_layers):  # cohorts follow the units that stay
        assert model.cohort(layer).numel() == model.hidden_sizes[layer]


def test_pruning_is_refused_with_continual_backprop_and_for_reference_rows(split_digits):
    from clgrow import GrowthError

    bm = split_digits
    with pytest.raises(GrowthError, match="continual backprop"):
        build_strategy(
            "naive",
            GrowableMLP(bm.in_features, [8], bm.num_classes),
            "none",
            prune="dead",
            plasticity="cbp",
            evaluator=quiet(),
        )
    with pytest.raises(GrowthError, match="unknown selector"):
        PrunePlugin("sideways")


def test_units_pruned_is_an_avalanche_metric_per_layer(split_digits):
    from avalanche.training.plugins import EvaluationPlugin

    from clgrow.strategies import ResultsWriter, growth_metrics

    bm = split_digits
    model = GrowableMLP(bm.in_features, [12, 12], bm.num_classes)
    _kill_half(model)
    writer = ResultsWriter(None)
    strategy = build_strategy(
        "naive",
        model,
        "none",
        train_mb_size=64,
        prune="dead",
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
