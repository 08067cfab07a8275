"""measure_inactivity against a hand-computed example."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from clgrow import GrowableMLP, GrowthError, measure_inactivity


def _hand_model() -> GrowableMLP:
    """Units: u0 = relu(x0); u1 = relu(-x0 - 10) (dead); u2 = relu(0.01 x1) (weak);
    then a new unit u3 = relu(x1) (cohort 1) and a new dead unit u4 = relu(-1)."""
    model = GrowableMLP(2, [3], 2)
    with torch.no_grad():
        model.hidden[0].weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.01]]))
        model.hidden[0].bias.copy_(torch.tensor([0.0, -10.0, 0.0]))
    model.add_units(0, torch.tensor([[0.0, 1.0], [0.0, 0.0]]), torch.tensor([0.0, -1.0]))
    return model


def _probe() -> DataLoader:
    x = torch.tensor([[1.0, 2.0], [3.0, 0.0], [0.0, 4.0], [2.0, 2.0]])
    return DataLoader(TensorDataset(x, torch.zeros(4, dtype=torch.long)), batch_size=3)


def test_hand_computed_dead_and_dormant():
    stats = measure_inactivity(_hand_model(), _probe(), tau=0.025)
    # mean |h|: u0 = 1.5, u1 = 0, u2 = 0.02, u3 = 2.0, u4 = 0; layer mean = 3.52 / 5 = 0.704
    # scores: u2 = 0.0284 > 0.025 (not dormant); u1, u4 = 0 (dormant and dead)
    layer = stats.layers[0]
    assert (layer.units, layer.dead, layer.dormant) == (5, 2, 2)
    assert (layer.new_units, layer.new_dead, layer.new_dormant) == (2, 1, 1)
    assert stats.samples == 4
    assert stats.dead_fraction == pytest.approx(2 / 5)
    assert stats.new_dormant_fraction == pytest.approx(1 / 2)
    assert layer.cohorts[0].units == 3 and layer.cohorts[1].dead == 1
    # raising tau above u2's score (0.0284) makes it dormant, not dead
    stats = measure_inactivity(_hand_model(), _probe(), tau=0.03)
    assert (stats.layers[0].dead, stats.layers[0].dormant) == (2, 3)
    # tau = 0 is "dead"
    stats = measure_inactivity(_hand_model(), _probe(), tau=0.0)
    assert stats.layers[0].dormant == stats.layers[0].dead == 2
    assert stats.cohort_fractions() == {0: (1 / 3, 1 / 3), 1: (0.5, 0.5)}


def test_no_new_units_gives_nan_new_fractions():
    model = GrowableMLP(2, [3], 2)
    stats = measure_inactivity(model, _probe())
    assert math.isnan(stats.new_dead_fraction) and stats.new_units == 0


def test_mode_restored_and_errors():
    model = _hand_model().train()
    measure_inactivity(model, _probe())
    assert model.training
    with pytest.raises(GrowthError, match="tau"):
        measure_inactivity(model, _probe(), tau=-1)
    empty = DataLoader(TensorDataset(torch.zeros(0, 2), torch.zeros(0)), batch_size=2)
    with pytest.raises(GrowthError, match="probe loader is empty"):
        measure_inactivity(model, empty)
