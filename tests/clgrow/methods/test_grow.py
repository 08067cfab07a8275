"""grow(): argument checks and bit-identical rollback on failure."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from clgrow import Distributor, GrowthError, grow, mlp
from tests.helpers import sites, state_equal


def _unchanged(model, fn):
    state = {k: v.clone() for k, v in model.state_dict().items()}
    ids = [id(p) for p in model.parameters()]
    fn()
    assert state_equal(state, model.state_dict())
    assert [id(p) for p in model.parameters()] == ids


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(k=-1), "must be >= 0"),
        (dict(k=2.5), "must be an integer"),
        (dict(k=True), "must be an integer"),
        (dict(layers=[3]), "unknown hidden layer 3"),
        (dict(layers=[]), "layers is empty"),
        (dict(extender="nope"), "unknown extender 'nope'"),
        (dict(distributor="nope"), "unknown distributor 'nope'"),
    ],
)
def test_bad_arguments_are_named_and_change_nothing(trained_mlp, digits_loader, kwargs, message):
    args = dict(k=4, loader=digits_loader, extender="random", distributor="uniform") | kwargs

    def run():
        with pytest.raises(GrowthError, match=message):
            grow(trained_mlp, **args)

    _unchanged(trained_mlp, run)


def test_empty_loader_is_refused(trained_mlp):
    empty = DataLoader(TensorDataset(torch.zeros(0, 64), torch.zeros(0, dtype=torch.long)), batch_size=4)

    def run():
        with pytest.raises(GrowthError, match="loader is empty"):
            grow(trained_mlp, 4, empty, "random", "uniform")

    _unchanged(trained_mlp, run)


def test_failure_inside_extender_rolls_back_every_layer(trained_mlp, digits_loader, monkeypatch):
    """Layer 2 is extended first; a failure on layer 0 must undo layer 2 as well."""
    from clgrow import RandomExtender

    real = RandomExtender._extend_layer

    def flaky(self, model, layer, *a, **kw):
        if layer == 0:
            raise RuntimeError("simulated out of memory")
        return real(self, model, layer, *a, **kw)

    monkeypatch.setattr(RandomExtender, "_extend_layer", flaky)

    def run():
        with pytest.raises(GrowthError, match="simulated out of memory.*left unchanged"):
            grow(trained_mlp, 6, digits_loader, "random", "uniform")

    _unchanged(trained_mlp, run)
    assert int(sites(trained_mlp).growth_steps) == 0


def test_a_distributor_that_miscounts_is_caught(trained_mlp, digits_loader):
    class Bad(Distributor):
        def allocate(self, model, k, loader=None, loss_fn=None, layers=None):
            return {0: k + 1}

    def run():
        with pytest.raises(GrowthError, match="invalid allocation"):
            grow(trained_mlp, 3, digits_loader, "random", Bad())

    _unchanged(trained_mlp, run)


def test_k_zero_is_a_no_op(trained_mlp, digits_loader):
    def run():
        report = grow(trained_mlp, 0, digits_loader)
        assert report.allocation == {0: 0, 1: 0, 2: 0} and report.cohort == 0

    _unchanged(trained_mlp, run)


def test_cohorts_count_growth_steps(trained_mlp, digits_loader):
    r1 = grow(trained_mlp, 3, digits_loader, "random", "uniform")
    r2 = grow(trained_mlp, 3, digits_loader, "random", "uniform")
    assert (r1.cohort, r2.cohort) == (1, 2)
    assert sites(trained_mlp).cohort(0).tolist() == [0] * 16 + [1, 2]
    assert set(r1.seconds) == {"distributor", "extender", "total"}


def test_a_template_distributor_that_miscounts_is_caught(trained_mlp, digits_loader):
    class Bad(Distributor):
        def _allocate(self, model, k, ctx):
            return {ctx.layers[0]: k + 1}

    def run():
        with pytest.raises(GrowthError, match="invalid allocation"):
            grow(trained_mlp, 3, digits_loader, "random", Bad())

    _unchanged(trained_mlp, run)
    assert Bad().allocate(trained_mlp, 0) == {0: 0, 1: 0, 2: 0}  # k = 0 never reaches _allocate


def test_fractional_budget_spreads_over_an_unshuffled_loader():
    """A quarter pass over data sorted by label sees labels from its whole range, not only the first."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from clgrow import iter_passes

    y = torch.arange(10).repeat_interleave(20)
    loader = DataLoader(TensorDataset(torch.randn(200, 3), y), batch_size=20, shuffle=False)
    seen = [int(b[1][0]) for b in iter_passes(loader, 0.3)]
    assert len(seen) == 3 and seen == [0, 3, 6]
    shuffled = DataLoader(TensorDataset(torch.randn(200, 3), y), batch_size=20, shuffle=True)
    assert len(list(iter_passes(shuffled, 0.3))) == 3


def test_a_one_shot_iterator_is_refused_before_anything_changes():
    import torch

    from clgrow import SWE, GrowthError, SVoD, grow, mlp

    torch.manual_seed(0)
    model = mlp(4, [3], 2)
    before = [p.detach().clone() for p in model.parameters()]
    batches = ((torch.randn(8, 4), torch.randint(0, 2, (8,))) for _ in range(3))
    with pytest.raises(GrowthError, match="one-shot iterator"):
        grow(model, 2, batches, SWE(), SVoD(), torch.nn.functional.cross_entropy)
    assert sites(model).hidden_sizes == [3] and all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(passes=0),
        dict(passes=float("nan")),
        dict(out_scale=-1.0),
        dict(incoming_norm=-0.5),
        dict(incoming_norm=float("inf")),
        dict(passes=True),
    ],
)
def test_gradmax_refuses_bad_arguments_at_construction(kwargs):
    from clgrow import GradMaxExtender

    with pytest.raises(ValueError, match="extender 'gradmax'"):
        GradMaxExtender(**kwargs)


def test_an_extender_that_adds_fewer_units_than_allotted_is_a_growth_error(digits_loader):
    """A third party's extender that adds nothing must not be recorded as 'grew K units'."""
    from clgrow import Extender

    class Lazy(Extender):
        def _extend_layer(self, model, layer, k, ctx):
            return torch.empty(0, dtype=torch.long)  # says it is done, adds nothing

    model = mlp(64, [8, 8], 10)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(GrowthError, match=r"Lazy was to add \{0: 2, 1: 2\} units per layer and added"):
        grow(model, 4, digits_loader, Lazy(), "uniform")
    assert sites(model).hidden_sizes == [8, 8]
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
