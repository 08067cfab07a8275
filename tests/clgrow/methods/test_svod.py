"""SVoD: allocations sum to K, the model is untouched, votes go where the loss can drop."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from clgrow import GrowthError, SVoD, grow, mlp
from tests.helpers import producer, sites, state_equal, train


@settings(max_examples=25, deadline=None)
@given(
    widths=st.lists(st.integers(1, 8), min_size=1, max_size=4),
    k=st.integers(0, 12),
    seed=st.integers(0, 2**16),
    eligible_frac=st.floats(0, 1),
)
def test_allocation_sums_to_k_and_model_untouched(widths, k, seed, eligible_frac):
    torch.manual_seed(seed)
    model = mlp(5, widths, 3)
    data = TensorDataset(torch.randn(40, 5), torch.randint(0, 3, (40,)))
    loader = DataLoader(data, batch_size=16)
    layers = list(range(max(1, int(eligible_frac * len(widths)))))
    ids = [id(p) for p in model.parameters()]
    state = {n: v.clone() for n, v in model.state_dict().items()}
    alloc = SVoD(train_passes=1, vote_passes=1).allocate(model, k, loader, nn.CrossEntropyLoss(), layers)
    assert sorted(alloc) == layers
    assert sum(alloc.values()) == k
    assert all(v >= 0 for v in alloc.values())
    assert state_equal(state, model.state_dict())
    assert [id(p) for p in model.parameters()] == ids


@pytest.mark.parametrize("widths,bottleneck", [([1, 48], 0), ([48, 1], 1)])
def test_votes_go_to_the_only_layer_that_can_reduce_the_loss(digits_loader, widths, bottleneck):
    """A one-unit bottleneck discards the input: only units in that layer can bring it back."""
    torch.manual_seed(0)
    model = mlp(64, widths, 10)
    train(model, digits_loader, epochs=3)
    alloc = SVoD(width_cap=None).allocate(model, 8, digits_loader, nn.CrossEntropyLoss())
    assert alloc[bottleneck] == 8  # the paper's 2K candidates per layer: every vote
    # capped (the default): fewer candidates in the bottleneck, voting as many as the wider layer's
    # (their quantiles): every vote
    svod = SVoD()
    alloc = svod.allocate(model, 8, digits_loader, nn.CrossEntropyLoss())
    assert svod.candidates_for(model, 8, [0, 1])[bottleneck] < 8 and alloc[bottleneck] == 8


def test_scores_have_one_entry_per_candidate(trained_mlp, digits_loader):
    scores = SVoD(candidates=3, width_cap=None).candidate_scores(
        trained_mlp, 4, digits_loader, nn.CrossEntropyLoss(), [0, 2]
    )
    assert {i: s.shape for i, s in scores.items()} == {0: (12,), 2: (12,)}
    capped = SVoD(candidates=3).candidate_scores(trained_mlp, 4, digits_loader, nn.CrossEntropyLoss(), [0, 2])
    assert {i: s.shape for i, s in capped.items()} == {0: (8,), 2: (8,)}  # half of 16 units each
    assert all(torch.isfinite(s).all() for s in scores.values())


def test_grow_with_svod_records_allocation(trained_mlp, digits_loader):
    report = grow(trained_mlp, 10, digits_loader, "random", SVoD(train_passes=0.5, vote_passes=0.5))
    assert sum(report.allocation.values()) == 10
    assert sites(trained_mlp).hidden_sizes == [16 + report.allocation[i] for i in range(3)]
    assert set(report.info["distributor"]["scores"]) == {0, 1, 2}


@pytest.mark.parametrize("kwargs", [dict(train_passes=-1), dict(vote_passes=0), dict(candidates=0)])
def test_svod_arguments_are_validated(kwargs):
    with pytest.raises(GrowthError):
        SVoD(**kwargs)


@given(widths=st.lists(st.integers(1, 6), min_size=1, max_size=4), cand=st.integers(1, 5), data=st.data())
def test_copy_size_estimate_is_exact(widths, cand, data):
    """The memory guard's count equals the parameters of the copy SVoD would build."""
    from clgrow import mlp

    model = mlp(3, widths, 2)
    layers = data.draw(st.lists(st.sampled_from(range(len(widths))), min_size=1, unique=True))
    probe = copy.deepcopy(model)
    for i in sorted(layers):
        m = producer(probe, i).in_features
        sites(probe).add_units(i, torch.zeros(cand, m), torch.zeros(cand))
    assert SVoD.copy_numel(model, cand, layers) == sum(p.numel() for p in probe.parameters())


def test_oversized_copy_is_refused_before_anything_is_allocated():
    from clgrow import SWE, GrowthError, grow, mlp

    torch.manual_seed(0)
    model = mlp(4, [8, 8], 2)
    before = [p.detach().clone() for p in model.parameters()]
    data = [(torch.randn(16, 4), torch.randint(0, 2, (16,)))]
    with pytest.raises(GrowthError, match=r"SVoD: voting on K=500 .* above max_copy_bytes"):
        grow(model, 500, data, SWE(), SVoD(max_copy_bytes=1024**2), torch.nn.functional.cross_entropy)
    assert sites(model).hidden_sizes == [8, 8] and all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_reduce_votes_with_as_many_candidates_as_fit():
    from clgrow import SWE, grow, mlp

    torch.manual_seed(0)
    model = mlp(4, [8, 8], 2)
    data = [(torch.randn(16, 4), torch.randint(0, 2, (16,)))]
    cap = 200_000
    svod = SVoD(max_copy_bytes=cap, on_oversize="reduce", width_cap=None)
    report = grow(model, 100, data, SWE(passes=0.5), svod, torch.nn.functional.cross_entropy)
    used = svod.info["candidates"][0]
    assert svod.info["candidates"] == {0: used, 1: used} and 50 <= used < 200  # fewer than 2K, at least K over two
    assert SVoD.copy_numel(mlp(4, [8, 8], 2), used, [0, 1]) * 16 <= cap
    assert SVoD.copy_numel(mlp(4, [8, 8], 2), used + 1, [0, 1]) * 16 > cap
    assert sum(report.allocation.values()) == 100 and sites(model).hidden_sizes[0] + sites(model).hidden_sizes[1] == 116


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(alpha=2.0),
        dict(alpha=-0.1),
        dict(momentum=1.0),
        dict(lr=0),
        dict(lr=float("nan")),
        dict(init_range=0),
        dict(init_range=float("inf")),
        dict(max_copy_bytes=0),
        dict(candidates=1.5),
        dict(candidates=True),
        dict(max_copy_bytes=True),
    ],
)
def test_svod_refuses_bad_arguments_at_construction(kwargs):
    """Every argument is checked when the distributor is built, not when it first votes."""
    with pytest.raises(GrowthError, match="distributor 'svod'"):
        SVoD(**kwargs)


def test_svod_repr_shows_every_argument():
    text = repr(SVoD(alpha=0.5, max_copy_bytes=1024))
    for name in (
        "train_passes",
        "vote_passes",
        "candidates",
        "init_range",
        "lr",
        "momentum",
        "alpha=0.5",
        "max_copy_bytes=1024",
        "on_oversize",
    ):
        assert name in text


def test_budget_default_depends_on_the_setting():
    """None: the plain-training budget (0.1 + 0.05) or a quarter of it at a stream's new experience;
    a number applies to both, and grow() tells SVoD which one it is in."""
    assert (SVoD().passes_for(False), SVoD().passes_for(True)) == ((0.1, 0.05), (0.025, 0.0125))
    assert SVoD(train_passes=0.3).passes_for(True) == (0.3, 0.0125)
    assert SVoD(**SVoD.PAPER).passes_for(True) == (1.0, 1.0)


def test_grow_passes_the_setting_to_the_distributor(trained_mlp, digits_loader):
    seen = []

    class Spy(SVoD):
        def _allocate(self, model, k, ctx):
            seen.append(ctx.new_task)
            return super()._allocate(model, k, ctx)

    for new_task in (False, True):
        grow(trained_mlp, 2, digits_loader, "random", Spy(), new_task=new_task)
    assert seen == [False, True]


@settings(max_examples=25, deadline=None)
@given(
    widths=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    k=st.integers(1, 30),
    cap=st.sampled_from([None, 0.25, 0.5, 1.0, 3.0]),
    candidates=st.integers(1, 3),
)
def test_a_width_cap_bounds_every_layers_candidates_and_still_holds_k_votes(widths, k, cap, candidates):
    from clgrow import mlp

    model = mlp(5, widths, 3)
    layers = list(range(len(widths)))
    svod = SVoD(candidates=candidates, width_cap=cap)
    cands = svod.candidates_for(model, k, layers)
    assert sum(cands.values()) >= k and all(c <= candidates * k for c in cands.values())
    if cap is None:
        assert set(cands.values()) == {candidates * k}
    else:
        least = -(-k // len(layers))
        assert all(c <= max(math.ceil(cap * w), least) for c, w in zip(cands.values(), widths))
    data = [(torch.randn(12, 5), torch.randint(0, 3, (12,)))]
    scores = SVoD(train_passes=0.0, vote_passes=1.0, candidates=candidates, width_cap=cap).candidate_scores(
        model, k, data, torch.nn.functional.cross_entropy, layers
    )
    assert {i: len(s) for i, s in scores.items()} == cands
    alloc = SVoD(train_passes=0.0, vote_passes=1.0, candidates=candidates, width_cap=cap).allocate(
        model, k, data, torch.nn.functional.cross_entropy
    )
    assert sum(alloc.values()) == k and set(alloc) == set(layers)


@pytest.mark.parametrize(
    "scores,expected",
    [
        # equal counts: the K most negative scores as drawn
        ({0: [-5.0, -4.0, 1.0, 2.0], 1: [-3.0, 0.0, 3.0, 4.0]}, {0: 2, 1: 1}),
        # two candidates against four: layer 0 votes with its quantiles at four levels
        # (-5, -3.5, -0.5, 1), so its second vote beats layer 1's -3 (as drawn it would not)
        ({0: [-5.0, 1.0], 1: [-4.0, -3.0, -2.0, 5.0]}, {0: 2, 1: 1}),
    ],
)
def test_votes_pool_every_layer_at_the_largest_layers_count(digits_loader, scores, expected):
    class Given(SVoD):
        def _scores(self, model, k, ctx):
            return {i: torch.tensor(v) for i, v in scores.items()}

    model = mlp(64, [4, 4], 10)
    assert Given().allocate(model, 3, digits_loader, nn.CrossEntropyLoss()) == expected


def test_capped_layers_vote_with_their_quantiles_and_uncapped_ones_with_their_scores():
    from clgrow.methods.svod import _resample

    scores = torch.tensor([3.0, -1.0, 2.0, 0.0])
    assert torch.equal(_resample(scores, 4), scores)  # uncapped: the scores themselves
    many = _resample(scores, 8)
    assert many.shape == (8,) and torch.equal(many.sort().values, many)
    assert many.min() == -1.0 and many.max() == 3.0 and torch.isclose(many.mean(), scores.mean())
