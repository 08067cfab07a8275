"""measure_inactivity against a hand-computed example."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from clgrow import GrowthError, measure_inactivity, mlp
from tests.helpers import producer, sites


def _hand_model() -> nn.Module:
    """Units: u0 = relu(x0); u1 = relu(-x0 - 10) (dead); u2 = relu(0.01 x1) (weak);
    then a new unit u3 = relu(x1) (cohort 1) and a new dead unit u4 = relu(-1)."""
    model = mlp(2, [3], 2)
    with torch.no_grad():
        producer(model, 0).weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.01]]))
        producer(model, 0).bias.copy_(torch.tensor([0.0, -10.0, 0.0]))
    sites(model).add_units(0, torch.tensor([[0.0, 1.0], [0.0, 0.0]]), torch.tensor([0.0, -1.0]))
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
    model = mlp(2, [3], 2)
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


@settings(max_examples=40, deadline=None)
@given(
    widths=st.lists(st.integers(1, 7), min_size=1, max_size=3),
    cuts=st.lists(st.integers(1, 9), min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
    tau=st.sampled_from([0.0, 0.025, 0.5]),
)
def test_accumulator_in_batches_equals_one_pass(widths, cuts, seed, tau):
    """Batch order and batch sizes do not change the counts (sums and any() are associative)."""
    from clgrow import InactivityAccumulator

    g = torch.Generator().manual_seed(seed)
    n = sum(cuts)
    acts = [torch.relu(torch.randn(n, w, generator=g)) * (torch.rand(w, generator=g) > 0.3) for w in widths]
    cohorts = [torch.randint(0, 3, (w,), generator=g) for w in widths]
    whole, parts = InactivityAccumulator(len(widths)), InactivityAccumulator(len(widths))
    for i, a in enumerate(acts):
        whole.add(i, a)
    start = 0
    for c in cuts:
        for i, a in enumerate(acts):
            parts.add(i, a[start : start + c])
        start += c
    a, b = whole.stats(cohorts, tau), parts.stats(cohorts, tau)
    assert a.samples == b.samples == n
    assert [(la.dead, la.new_dead, la.units) for la in a.layers] == [
        (lb.dead, lb.new_dead, lb.units) for lb in b.layers
    ]
    assert [la.dormant for la in a.layers] == [lb.dormant for lb in b.layers]
    assert a.dead_fraction == b.dead_fraction


def test_non_finite_activations_are_not_counted_as_dormant():
    import torch

    from clgrow import GrowthError, measure_inactivity, mlp

    model = mlp(3, [4, 4], 2)
    with torch.no_grad():
        producer(model, 1).weight[0, 0] = float("nan")
    with pytest.raises(GrowthError, match="hidden layer 1 are not finite"):
        measure_inactivity(model, [(torch.rand(5, 3), torch.zeros(5, dtype=torch.long))])


@settings(max_examples=40, deadline=None)
@given(width=st.integers(1, 9), n=st.integers(1, 20), seed=st.integers(0, 2**16), tiny=st.booleans())
def test_dead_units_are_the_never_nonzero_ones(width, n, seed, tiny):
    """Dead is read from sum |h| > 0; it must equal "never non-zero", even for the smallest
    positive (subnormal) activations, with or without the non-negative shortcut."""
    from clgrow import InactivityAccumulator

    g = torch.Generator().manual_seed(seed)
    h = torch.relu(torch.randn(n, width, generator=g)) * (torch.rand(width, generator=g) > 0.4)
    if tiny:
        h = h * 1e-45  # rounds to the smallest subnormal float32 (or to zero)
    expected_dead = ~(h != 0).any(0)
    for nonnegative in (True, False):
        acc = InactivityAccumulator(1)
        for part in h.split(3):
            acc.add(0, part, nonnegative=nonnegative)
        stats = acc.stats([torch.zeros(width, dtype=torch.long)], 0.025)
        assert stats.layers[0].dead == int(expected_dead.sum())
        assert torch.equal(acc.nonzero[0], ~expected_dead)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 40), seed=st.integers(0, 2**16), lo=st.integers(-2, 1), tau=st.sampled_from([0.0, 0.1, 0.6]))
def test_counts_per_cohort_match_their_definition(n, seed, lo, tau):
    from clgrow.measure.inactivity import dormant_mask, inactivity_from_activations

    g = torch.Generator().manual_seed(seed)
    abs_sum = torch.rand(n, generator=g) * (torch.rand(n, generator=g) > 0.3)
    cohort = torch.randint(lo, lo + 4, (n,), generator=g)
    layer = inactivity_from_activations(abs_sum, abs_sum > 0, 7, cohort, tau)
    dead, dormant = abs_sum == 0, dormant_mask(abs_sum / 7, tau)
    for c in set(cohort.tolist()):
        m = cohort == c
        assert (layer.cohorts[c].units, layer.cohorts[c].dead, layer.cohorts[c].dormant) == (
            int(m.sum()),
            int((dead & m).sum()),
            int((dormant & m).sum()),
        )
    assert set(layer.cohorts) == set(cohort.tolist())
    new = cohort > 0
    assert (layer.units, layer.dead, layer.dormant) == (n, int(dead.sum()), int(dormant.sum()))
    assert (layer.new_units, layer.new_dead, layer.new_dormant) == (
        int(new.sum()),
        int((dead & new).sum()),
        int((dormant & new).sum()),
    )
