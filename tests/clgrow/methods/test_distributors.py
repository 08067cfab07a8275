"""Simple distributors: shares and sums."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clgrow import FixedLayerDistributor, GrowthError, ProportionalDistributor, UniformDistributor, mlp
from clgrow.methods.distributor import largest_remainder


@given(k=st.integers(0, 500), weights=st.lists(st.floats(0, 100), min_size=1, max_size=8))
def test_largest_remainder_sums_and_is_close_to_quota(k, weights):
    counts = largest_remainder(k, weights)
    assert sum(counts) == k and all(c >= 0 for c in counts)
    total = sum(weights)
    if total > 0:
        for c, w in zip(counts, weights):
            assert abs(c - k * w / total) < 1 + 1e-9


def test_uniform_gives_remainder_to_earliest_layers():
    model = mlp(4, [3, 3, 3], 2)
    assert UniformDistributor().allocate(model, 7) == {0: 3, 1: 2, 2: 2}


def test_proportional_follows_widths():
    model = mlp(4, [10, 30], 2)
    assert ProportionalDistributor().allocate(model, 8) == {0: 2, 1: 6}


def test_fixed_layer_and_negative_index():
    model = mlp(4, [3, 3, 3], 2)
    assert FixedLayerDistributor(-1).allocate(model, 5) == {0: 0, 1: 0, 2: 5}
    assert FixedLayerDistributor(0).allocate(model, 5) == {0: 5, 1: 0, 2: 0}
    assert FixedLayerDistributor().allocate(model, 5, layers=[1]) == {1: 5}
    with pytest.raises(GrowthError, match="names no eligible layer"):
        FixedLayerDistributor(0).allocate(model, 5, layers=[1, 2])
