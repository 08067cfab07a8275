"""EWC and SI keep their stored tensors aligned when parameters grow in two dimensions."""

from __future__ import annotations

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import EWCPlugin, MASPlugin, RWalkPlugin, SynapticIntelligencePlugin
from avalanche.training.utils import ParamData
from hypothesis import given, settings
from hypothesis import strategies as st

from clgrow import GrowthError, UniformDistributor, mlp
from clgrow.strategies import build_strategy
from clgrow.strategies.optimizer_state import pad_leading, pad_with_means
from tests.helpers import producer, sites
from tests.strategies.conftest import fast_plugin, quiet


@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), extra=st.lists(st.integers(0, 3), min_size=3, max_size=3)
)
def test_pad_leading_keeps_the_block(shape, extra):
    old = torch.randn(*shape)
    new_shape = tuple(s + e for s, e in zip(shape, extra))
    out = pad_leading(old, new_shape)
    assert out.shape == new_shape
    assert torch.equal(out[tuple(slice(0, s) for s in shape)], old)
    assert out.abs().sum() == pytest.approx(old.abs().sum().item(), rel=1e-5)


def test_avalanche_expand_refuses_two_dimensional_growth():
    """The pitfall this module exists for (if Avalanche fixes it, this test says so)."""
    pd = ParamData("w", init_tensor=torch.ones(3, 4))
    with pytest.raises(AssertionError, match="more than one dimension"):
        pd.expand(torch.Size([5, 6]))


class _FirstIteration(SupervisedPlugin):
    """Calls ``fn(strategy)`` at the first training iteration after ``arm()``."""

    def __init__(self, fn):
        super().__init__()
        self.fn, self.armed = fn, False

    def before_training_iteration(self, strategy, **kwargs):
        if self.armed:
            self.armed = False
            self.fn(strategy)


def _stores(reg, kind):
    """(name, ParamData dict, flattened?) of the per-parameter stores that persist from one
    experience to the next (the others are recomputed by the plugin at every step)."""
    if kind in ("ewc", "ewc-online"):
        return [("imp", reg.importances[0], False), ("saved", reg.saved_params[0], False)]
    if kind == "mas":
        return [("imp", reg.importance, False), ("saved", reg.params, False)]
    if kind == "rwalk":
        return [("imp", reg.exp_penalties, False), ("saved", reg.exp_params, False)]
    # SI re-extracts thetas, gradients and the per-experience trajectory itself at every
    # experience/iteration; the importances and the cumulative trajectory persist.
    return [("imp", reg.ewc_data[1], True), ("cum_trajectory", reg.syn_data["cum_trajectory"], True)]


_REGULARISERS = (EWCPlugin, SynapticIntelligencePlugin, MASPlugin, RWalkPlugin)
_REG_HP = {
    "ewc": dict(ewc_lambda=10.0),
    "ewc-online": dict(ewc_lambda=10.0, mode="online", decay_factor=0.9),
    "si": dict(si_lambda=0.1),
    "mas": dict(lambda_reg=1.0),
    "rwalk": {},
}


@pytest.mark.parametrize("kind", sorted(_REG_HP))
def test_regulariser_state_stays_aligned_after_growth(split_digits, kind):
    """Growth in both dimensions of 3.weight: every stored tensor keeps its old values
    in the leading block (in the parameter's own shape) and gets zero importance elsewhere."""
    model = mlp(split_digits.in_features, [6, 6, 6], split_digits.num_classes)
    grow_plugin = fast_plugin(distributor=UniformDistributor(), neurons_per_experience=3)
    seen = {}
    probe = _FirstIteration(
        lambda strat: seen.update(
            {label: d["3.weight"].data.clone() for label, d, _ in _stores(reg, kind)},
            weight=producer(model, 1).weight.detach().clone(),
        )
    )
    strategy = build_strategy(
        kind.split("-")[0],
        model,
        None,
        plugins=[grow_plugin, probe],
        evaluator=quiet(),
        train_mb_size=32,
        **_REG_HP[kind],
    )
    reg = next(p for p in strategy.plugins if isinstance(p, _REGULARISERS))
    stream = split_digits.scenario.train_stream
    strategy.train(stream[0])
    name = "3.weight"
    marked = {}
    for label, store, flat in _stores(reg, kind):  # known values, so placement can be checked
        value = torch.arange(1.0, 37.0).reshape(6, 6)
        store[name].data = value.flatten() if flat else value
        marked[label] = value
    probe.armed = True
    strategy.train(stream[1])  # grows (3.weight: 6x6 -> 7x7), then trains with the penalty
    assert producer(model, 1).weight.shape == (7, 7)
    for label, value in marked.items():
        got = seen[label].reshape(7, 7)
        assert torch.equal(got[:6, :6], value), label
        if label != "saved":
            assert got[6].abs().sum() == 0 and got[:, 6].abs().sum() == 0, label
        else:  # copies of the parameter take its values where it grew: no pull towards zero
            w = seen["weight"]
            assert torch.equal(got[6], w[6]) and torch.equal(got[:, 6], w[:, 6])


class _ForeignPlugin(SupervisedPlugin):
    """A plugin the toolkit has never heard of, keeping per-parameter state of its own."""

    def __init__(self, model, layout="same"):
        super().__init__()
        params = dict(model.named_parameters())
        self.anchor = {n: ParamData(n, init_tensor=p.detach().clone()) for n, p in params.items()}
        self.stats = [{n: torch.ones_like(p) for n, p in params.items()}]
        if layout == "transposed":
            self.stats[0]["1.weight"] = params["1.weight"].detach().t().clone()


def test_an_unknown_plugin_is_padded_by_what_its_state_holds(split_digits):
    """Found without naming the class: a copy of the parameters is padded with their values,
    any other per-parameter state (plain tensors in a list) with zeros, in the parameter's shape."""
    from clgrow.strategies.param_state import align_param_state, find_param_state

    model = mlp(split_digits.in_features, [5, 5], split_digits.num_classes)
    foreign = _ForeignPlugin(model)
    old_shapes = {n: p.shape for n, p in model.named_parameters()}
    stores = find_param_state([foreign], model)
    assert sorted(s.path for s in stores) == ["anchor", "stats[0]"]
    assert {s.path: s.snapshot for s in stores} == {"anchor": True, "stats[0]": False}
    sites(model).add_units(0, torch.randn(2, split_digits.in_features), torch.zeros(2))
    sites(model).add_units(1, torch.randn(3, 7), torch.zeros(3))
    align_param_state(stores, model, old_shapes)
    w1 = producer(model, 1).weight.detach()
    assert foreign.anchor["3.weight"].data.shape == w1.shape == (8, 7)
    assert torch.equal(foreign.anchor["3.weight"].data, w1)
    stat = foreign.stats[0]["3.weight"]
    assert stat.shape == (8, 7) and stat[:5, :5].eq(1).all() and stat.sum() == 25


def test_an_unalignable_plugin_is_refused_before_growth(split_digits):
    model = mlp(split_digits.in_features, [6, 6], split_digits.num_classes)
    plugin = fast_plugin(distributor=UniformDistributor())
    strategy = build_strategy(
        "naive", model, None, plugins=[plugin, _ForeignPlugin(model, "transposed")], evaluator=quiet(), train_mb_size=32
    )
    strategy.train(split_digits.scenario.train_stream[0])
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(GrowthError, match=r"_ForeignPlugin.*stats\[0\]\['1.weight'\].*\(64, 6\)"):
        strategy.train(split_digits.scenario.train_stream[1])
    assert sites(model).hidden_sizes == [6, 6]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def _si_importances(plugin_cls, split_digits):
    torch.manual_seed(0)
    model = mlp(split_digits.in_features, [16], split_digits.num_classes)
    si = plugin_cls(si_lambda=1.0)
    strategy = build_strategy("naive", model, None, plugins=[si], evaluator=quiet(), train_mb_size=32, lr=1e-2)
    strategy.train(split_digits.scenario.train_stream[0])
    return si.ewc_data[1]["1.weight"].data


def test_si_on_cpu_learns_importances_where_avalanche_does_not(split_digits):
    from clgrow.strategies.regularisers import SIPlugin

    assert _si_importances(SynapticIntelligencePlugin, split_digits).abs().sum() == 0  # Avalanche 0.6 on CPU
    ours = _si_importances(SIPlugin, split_digits)
    assert ours.abs().sum() > 0 and ours.max() > 0


def test_si_results_differ_from_naive(split_digits):
    """With its penalty working, SI ends somewhere else than Naive on the same seed."""

    def final_params(name, **hp):
        torch.manual_seed(0)
        model = mlp(split_digits.in_features, [16], split_digits.num_classes)
        strategy = build_strategy(name, model, None, evaluator=quiet(), train_mb_size=32, lr=1e-2, **hp)
        for exp in split_digits.scenario.train_stream[:2]:
            strategy.train(exp)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    naive, si = final_params("naive"), final_params("si", si_lambda=10.0)
    assert not torch.allclose(naive, si, atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    extra=st.lists(st.integers(0, 3), min_size=3, max_size=3),
)
def test_pad_with_means_keeps_the_block_and_fills_with_means(shape, extra):
    old = torch.rand(shape)
    new_shape = tuple(s + e for s, e in zip(shape, extra))
    out = pad_with_means(old, new_shape)
    assert out.shape == new_shape
    assert torch.equal(out[tuple(slice(0, s) for s in shape)], old)
    for dim, e in enumerate(extra[: len(shape)]):
        if e:
            # the first appended slice along a grown dimension is the mean along it of what
            # precedes it (the dimensions padded before it already padded)
            idx = [slice(None)] * len(shape)
            idx[dim] = slice(0, shape[dim])
            idx_new = list(idx)
            idx_new[dim] = slice(shape[dim], shape[dim] + 1)
            for d2 in range(dim + 1, len(shape)):  # later dimensions are padded afterwards
                idx[d2] = idx_new[d2] = slice(0, shape[d2])
            assert torch.allclose(out[tuple(idx_new)], out[tuple(idx)].mean(dim, keepdim=True))
    # a second moment stays positive where every old entry is
    assert bool((out > 0).all())
