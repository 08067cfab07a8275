"""Plasticity resets (ReDo, continual backprop): function, optimizer state, selection, growth."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from clgrow import (
    ConfigError,
    ContinualBackprop,
    ReDo,
    build_plasticity_method,
    mlp,
    plasticity_methods,
    reset_units,
)
from clgrow.methods.plasticity import hidden_activations
from tests.helpers import fan_in, producer, sites


def _model(sizes: list[int], m: int = 5, p: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return mlp(m, sizes, p)


def _trained_optimizer(model: nn.Module, kind: str, steps: int = 3) -> torch.optim.Optimizer:
    opt = (
        torch.optim.Adam(model.parameters(), lr=1e-2)
        if kind == "adam"
        else torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    )
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(16, fan_in(model, 0))).pow(2).sum().backward()
        opt.step()
    for param, state in opt.state.items():  # dead units of a random net get no gradient: make every entry count
        for value in state.values():
            if torch.is_tensor(value) and value.shape == param.shape:
                value.copy_(torch.rand_like(value) + 0.1)
    return opt


shapes = st.tuples(st.lists(st.integers(2, 7), min_size=1, max_size=3), st.integers(0, 10_000))


@settings(max_examples=25, deadline=None)
@given(shapes, st.data())
def test_a_reset_is_function_preserving_once_its_outgoing_weights_are_zero(shape, data):
    """Only the zeroed outgoing weights matter: the fresh incoming weights change nothing downstream."""
    sizes, seed = shape
    model = _model(sizes, seed=seed)
    layer = data.draw(st.integers(0, len(sizes) - 1))
    units = torch.tensor(sorted(data.draw(st.sets(st.integers(0, sizes[layer] - 1), min_size=1))))
    x = torch.randn(9, 5)
    reference = copy.deepcopy(model)
    with torch.no_grad():
        for cons in sites(reference).consumers(layer):
            cons.weight[:, units] = 0.0
    before_w = producer(model, layer).weight.detach().clone()
    reset_units(model, layer, units)
    assert torch.equal(model(x), reference(x))
    for cons in sites(model).consumers(layer):
        assert torch.count_nonzero(cons.weight[:, units]) == 0
    keep = torch.ones(sizes[layer], dtype=torch.bool)
    keep[units] = False
    assert torch.equal(producer(model, layer).weight[keep], before_w[keep])
    assert not torch.equal(producer(model, layer).weight[units], before_w[units])  # fresh draws


@settings(max_examples=25, deadline=None)
@given(shapes, st.sampled_from(["adam", "sgd"]), st.data())
def test_optimizer_state_is_cleared_for_exactly_the_reset_entries(shape, kind, data):
    sizes, seed = shape
    model = _model(sizes, seed=seed)
    opt = _trained_optimizer(model, kind)
    layer = data.draw(st.integers(0, len(sizes) - 1))
    units = torch.tensor(sorted(data.draw(st.sets(st.integers(0, sizes[layer] - 1), min_size=1))))
    before = {p: {k: v.clone() for k, v in opt.state[p].items() if torch.is_tensor(v)} for p in model.parameters()}
    lin = producer(model, layer)
    consumers = sites(model).consumers(layer)
    reset_units(model, layer, units, opt)
    keys = ("exp_avg", "exp_avg_sq") if kind == "adam" else ("momentum_buffer",)
    for p in model.parameters():
        for key in keys:
            old, new = before[p][key], opt.state[p][key]
            expect = old.clone()
            if p is lin.weight or p is lin.bias:
                expect[units] = 0.0
            elif any(p is c.weight for c in consumers):
                expect[:, units] = 0.0
            assert torch.equal(new, expect), key
        if kind == "adam":
            assert torch.equal(opt.state[p]["step"], before[p]["step"])  # the tensor's shared step is kept


def test_redo_resets_exactly_the_dormant_units_and_keeps_the_batch_output():
    model = _model([6, 5], m=4, p=3)
    with torch.no_grad():
        producer(model, 0).weight[[1, 4]] = 0.0
        producer(model, 0).bias[[1, 4]] = -1.0  # dead on every input
        producer(model, 1).bias += 5.0  # the next layer all alive
    x = torch.randn(32, 4)
    acts = hidden_activations(model, x)
    redo = ReDo(tau=0.0)
    assert {i: u.tolist() for i, u in redo.dormant(acts).items() if u.numel()} == {0: [1, 4]}
    out = model(x)
    reset = redo.at_experience(model, 1, acts)
    assert {i: u.tolist() for i, u in reset.items()} == {0: [1, 4]}
    assert torch.equal(model(x), out)  # dead units contributed nothing, their outgoing weights are now zero
    assert torch.count_nonzero(producer(model, 1).weight[:, [1, 4]]) == 0
    assert redo.at_experience(model, 0, acts) == {}  # not before from_experience


def test_redo_every_n_steps():
    model = _model([4], m=3, p=2)
    with torch.no_grad():
        producer(model, 0).bias[0] = -10.0
        producer(model, 0).weight[0] = 0.0
    acts = hidden_activations(model, torch.randn(8, 3))
    redo = ReDo(every=3)
    assert redo.needs_steps and not ReDo().needs_steps
    assert redo.after_step(model, 2, acts) == {}
    assert redo.after_step(model, 3, acts)[0].tolist() == [0]


def test_cbp_replaces_the_lowest_utility_mature_unit_and_folds_its_mean():
    model = _model([5], m=3, p=2)
    with torch.no_grad():
        producer(model, 0).weight[2] = 0.0
        producer(model, 0).bias[2] = 0.5  # constant activation 0.5: its contribution is exactly its mean
        model[-1].weight[:, 2] = torch.tensor([1e-3, -1e-3])  # tiny outgoing weights: the lowest utility
        model[-1].weight[:, [0, 1, 3, 4]] = 1.0
        producer(model, 0).bias[[0, 1, 3, 4]] = 1.0
    cbp = ContinualBackprop(replacement_rate=0.2, maturity=0, decay=0.5)  # 5 mature units x 0.2 = one per step
    x = torch.rand(16, 3)
    out = model(x)
    reset = cbp.after_step(model, 1, hidden_activations(model, x))
    assert reset[0].tolist() == [2]
    assert torch.allclose(model(x), out, atol=1e-6)  # the folded mean replaces the constant contribution
    assert cbp.age[0][2] == 0 and cbp.utility[0][2] == 0 and int(cbp.age[0].sum()) == 4


def test_cbp_respects_maturity_and_accrues_fractions():
    model = _model([10], m=3, p=2)
    cbp = ContinualBackprop(replacement_rate=0.05, maturity=2)
    x = torch.rand(8, 3)
    counts = [
        sum(u.numel() for u in cbp.after_step(model, s, hidden_activations(model, x)).values()) for s in range(1, 8)
    ]
    # ages 1, 2 are immature; from step 3 on 10 mature units accrue 0.5 per step; the unit reset at
    # step 4 is immature again for steps 5-6, when 9 units accrue 0.45 each
    assert counts == [0, 0, 0, 1, 0, 0, 1]


def test_cbp_state_follows_growth():
    model = _model([4, 3], m=3, p=2)
    cbp = ContinualBackprop(maturity=0)
    cbp.after_step(model, 1, hidden_activations(model, torch.rand(4, 3)))
    sites(model).add_units(0, torch.randn(2, 3), torch.zeros(2))
    cbp.after_step(model, 2, hidden_activations(model, torch.rand(4, 3)))
    assert cbp.age[0].tolist() == [2, 2, 2, 2, 1, 1] and cbp.age[1].tolist() == [2, 2, 2]
    again = ContinualBackprop(maturity=0)
    again.load_state_dict(cbp.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(again.utility, cbp.utility))


def test_build_plasticity_method_names_bad_input():
    assert build_plasticity_method("none") is None
    assert isinstance(build_plasticity_method("redo", tau=0.1), ReDo)
    assert set(plasticity_methods) == {"redo", "cbp"}
    with pytest.raises(ConfigError, match="unknown plasticity method 'reset'"):
        build_plasticity_method("reset")
    with pytest.raises(ConfigError, match="plasticity_kwargs: plasticity method 'redo': tau"):
        build_plasticity_method("redo", tau=-1)
    with pytest.raises(ConfigError, match="plasticity_kwargs: plasticity method 'cbp' has no argument.*rho"):
        build_plasticity_method("cbp", rho=1)
    with pytest.raises(ConfigError, match="plasticity is 'none'"):
        build_plasticity_method("none", tau=0.1)
