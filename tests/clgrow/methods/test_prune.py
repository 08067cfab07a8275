"""Removing units: exact for dead units, transactional, optimizer state sliced."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from clgrow import grow, mlp
from clgrow.errors import GrowthError
from clgrow.methods.prune import prune, select_units
from tests.helpers import fan_in, producer, sites


def _kill(model: nn.Module, layer: int, units: list[int]) -> None:
    """Make units dead on any input: zero incoming weights, negative bias."""
    with torch.no_grad():
        producer(model, layer).weight[units] = 0.0
        producer(model, layer).bias[units] = -1.0


@settings(max_examples=40, deadline=None)
@given(
    widths=st.lists(st.integers(2, 9), min_size=1, max_size=3),
    m=st.integers(1, 6),
    classes=st.integers(1, 4),
    data=st.data(),
)
def test_removing_dead_units_leaves_the_outputs_on_the_data_unchanged(widths, m, classes, data):
    torch.manual_seed(data.draw(st.integers(0, 2**16)))
    model = mlp(m, widths, classes)
    dead = {}
    for layer, n in enumerate(widths):
        chosen = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n - 1))
        if chosen:
            _kill(model, layer, chosen)
            dead[layer] = sorted(chosen)
    x = torch.randn(16, m)
    before = model(x)
    chosen = select_units(model, "dead", [(x, torch.zeros(16, dtype=torch.long))])
    for layer, units in dead.items():  # every unit made dead is chosen (others may be dead too on this data)
        assert set(units) <= set(chosen[layer].tolist())
    for layer, idx in list(chosen.items()):  # a layer keeps one unit at least (a dead one may stay)
        if idx.numel() == widths[layer]:
            chosen[layer] = idx[1:]
    cohorts = [sites(model).cohort(i).clone() for i in range(len(widths))]
    report = prune(model, chosen)
    assert report.hidden_sizes_after == [n - len(chosen.get(i, [])) for i, n in enumerate(widths)]
    torch.testing.assert_close(model(x), before, rtol=0, atol=1e-6)
    for i, c in enumerate(cohorts):
        keep = [j for j in range(widths[i]) if j not in set(chosen.get(i, torch.empty(0)).tolist())]
        assert torch.equal(sites(model).cohort(i), c[keep])


def test_a_refused_or_failed_prune_leaves_model_and_optimizer_bit_identical(monkeypatch):
    torch.manual_seed(0)
    model = mlp(5, [6, 6], 3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 5)).sum().backward()
        opt.step()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    params = [p for g in opt.param_groups for p in g["params"]]
    with pytest.raises(GrowthError, match="fewer than 1"):
        prune(model, {0: list(range(6))}, optimizer=opt)
    with pytest.raises(GrowthError, match="repeated"):
        prune(model, {0: [1, 1]}, optimizer=opt)
    with pytest.raises(GrowthError, match="units 0..5"):
        prune(model, {1: [6]}, optimizer=opt)
    from clgrow.sites import GrowableModule

    real, calls = GrowableModule.keep_units, []

    def fail_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return real(*a, **k)

    monkeypatch.setattr(GrowableModule, "keep_units", fail_second)
    with pytest.raises(GrowthError, match="prune failed .RuntimeError: disk on fire.; the model was left unchanged"):
        prune(model, {0: [0], 1: [2]}, optimizer=opt)
    assert sites(model).hidden_sizes == [6, 6]
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert [p for g in opt.param_groups for p in g["params"]] == params
    assert all(p in opt.state for p in params)


def test_the_optimizer_keeps_the_state_of_the_units_that_stay():
    torch.manual_seed(0)
    model = mlp(5, [6, 4], 3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 5)).sum().backward()
        opt.step()
    w0, v1 = producer(model, 0).weight, producer(model, 1).weight
    m0, mv = opt.state[w0]["exp_avg"].clone(), opt.state[v1]["exp_avg"].clone()
    prune(model, {0: [1, 4]}, optimizer=opt)
    keep = [0, 2, 3, 5]
    assert torch.equal(opt.state[producer(model, 0).weight]["exp_avg"], m0[keep])
    assert torch.equal(opt.state[producer(model, 1).weight]["exp_avg"], mv[:, keep])
    optimized = {id(p) for g in opt.param_groups for p in g["params"]}
    assert optimized == {id(p) for p in model.parameters()}  # every parameter is still optimized
    opt.zero_grad()
    model(torch.randn(8, 5)).sum().backward()
    opt.step()  # and the sliced state fits


def test_prune_grow_prune_keeps_every_parameter_optimized():
    torch.manual_seed(0)
    model = mlp(5, [6, 6], 3)
    x = torch.randn(32, 5)
    _kill(model, 0, [2, 3])
    prune(model, select_units(model, "dead", [(x, torch.zeros(32, dtype=torch.long))]))
    grow(model, 4, [(x, torch.zeros(32, dtype=torch.long))], "random", "uniform")
    grown = sites(model).hidden_sizes
    assert grown[0] <= 4 + 2  # two dead units left layer 0 before it grew
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    prune(model, select_units(model, "norm", count={0: 1, 1: 2}), optimizer=opt)
    assert sites(model).hidden_sizes == [grown[0] - 1, grown[1] - 2]
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in model.parameters()}
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_selectors():
    torch.manual_seed(0)
    model = mlp(4, [5], 2)
    _kill(model, 0, [1])
    data = [(torch.randn(20, 4), torch.zeros(20, dtype=torch.long))]
    assert select_units(model, "dead", data)[0].tolist()[:1] == [1]
    assert 1 in select_units(model, "dormant", data, tau=0.025)[0].tolist()
    with torch.no_grad():
        model[-1].weight[:, 3] = 0.0
    assert select_units(model, "norm", count={0: 1})[0].tolist() == [3]
    with pytest.raises(GrowthError, match="unknown selector"):
        select_units(model, "random")
    with pytest.raises(GrowthError, match="needs data"):
        select_units(model, "dead")


def _copy_unit(model, layer: int, src: int, dst: int, scale: float) -> None:
    """Make unit ``dst`` compute ``scale`` times unit ``src`` (``scale > 0``: ReLU commutes with it),
    in every producer of the site (a residual stream's sum then scales too)."""
    grown = sites(model)
    grown.prepare()
    with torch.no_grad():
        for r in grown.members(layer):
            w, b = r.rows(), r.bias
            if r.norm is None:
                w[dst], b[dst] = scale * w[src], scale * b[src]
            else:  # the norm re-scales its input: copy the producer, scale after the norm
                w[dst], b[dst] = w[src], b[src]
        for bn in grown.norms(layer):
            bn.running_mean[dst], bn.running_var[dst] = bn.running_mean[src], bn.running_var[src]
            bn.weight[dst], bn.bias[dst] = scale * bn.weight[src], scale * bn.bias[src]


@settings(max_examples=30, deadline=None)
@given(
    widths=st.lists(st.integers(3, 9), min_size=1, max_size=3),
    m=st.integers(2, 6),
    classes=st.integers(1, 4),
    data=st.data(),
)
def test_swe_transfer_is_exact_for_units_the_staying_ones_reproduce(widths, m, classes, data):
    """A leaving unit that copies a staying one (times c > 0), is constant or is dead is fully
    reproduced by the staying units and the bias: ``swe`` keeps the outputs, ``drop`` need not."""
    torch.manual_seed(data.draw(st.integers(0, 2**16)))
    model = mlp(m, widths, classes)
    leaving: dict[int, list[int]] = {}
    for layer, n in enumerate(widths):
        chosen = data.draw(st.lists(st.integers(1, n - 1), unique=True, min_size=1, max_size=n - 2))
        for u in chosen:
            kind = data.draw(st.sampled_from(["copy", "constant", "dead"]))
            if kind == "copy":
                _copy_unit(model, layer, 0, u, data.draw(st.floats(0.2, 3.0)))
            else:
                with torch.no_grad():
                    producer(model, layer).weight[u] = 0.0
                    producer(model, layer).bias[u] = 0.7 if kind == "constant" else -1.0
        leaving[layer] = chosen
    x = torch.randn(64, m)
    batches = [(x[:32], torch.zeros(32, dtype=torch.long)), (x[32:], torch.zeros(32, dtype=torch.long))]
    before = model(x).detach()
    report = prune(model, leaving, method="swe", data=batches, ridge=1e-9)
    assert report.method == "swe" and report.function_change is not None and report.function_change < 1e-4
    torch.testing.assert_close(model(x), before, rtol=1e-4, atol=1e-4)
    assert all(0.999 < v <= 1.0 for v in report.info["kept"].values())


def test_swe_transfer_loses_less_than_drop_on_a_trained_model_and_keeps_the_staying_rows():
    torch.manual_seed(1)
    model = mlp(8, [24, 24], 3)
    x = torch.randn(256, 8)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    batches = [(x, y)]
    units = select_units(model, "utility", batches, count={0: 8, 1: 8})
    changes = {}
    for method in ("drop", "swe"):
        m2 = mlp(8, [24, 24], 3)
        m2.load_state_dict(model.state_dict())
        keep = [i for i in range(24) if i not in set(units[0].tolist())]
        rows = producer(m2, 0).weight.detach()[keep].clone()
        changes[method] = prune(m2, units, method=method, data=batches).function_change
        assert torch.equal(producer(m2, 0).weight, rows)  # the staying units compute what they did
    assert changes["swe"] < 0.8 * changes["drop"]


def test_selectors_rank_with_a_count_and_utility_reads_activity_and_outgoing_weights():
    torch.manual_seed(0)
    model = mlp(4, [6], 2)
    x = torch.randn(50, 4).abs()
    with torch.no_grad():
        producer(model, 0).weight.fill_(1.0)  # every unit sees sum(x)
        producer(model, 0).bias.zero_()
        producer(model, 0).weight[2] *= 0.01  # faint: lowest activity
        model[-1].weight[:, 4] = 0.0  # silent: no outgoing weight
    data = [(x, torch.zeros(50, dtype=torch.long))]
    assert sorted(select_units(model, "utility", data, count={0: 2})[0].tolist()) == [2, 4]
    assert select_units(model, "dormant", data, count={0: 1})[0].tolist() == [2]
    assert select_units(model, "norm", count={0: 1})[0].tolist() == [4]
    assert select_units(model, "dead", data, count={0: 3}) == {}  # none is dead: a count does not add any
    with pytest.raises(GrowthError, match="needs count"):
        select_units(model, "utility", data)
    with pytest.raises(GrowthError, match="count for layer 0"):
        select_units(model, "norm", count={0: 7})


def test_prune_refuses_an_unknown_method_and_swe_without_data():
    model = mlp(4, [5], 2)
    with pytest.raises(GrowthError, match="unknown method"):
        prune(model, {0: [1]}, method="merge")
    with pytest.raises(GrowthError, match="needs data"):
        prune(model, {0: [1]}, method="swe")
    with pytest.raises(GrowthError, match="data is empty"):
        prune(model, {0: [1]}, method="swe", data=[])
    assert sites(model).hidden_sizes == [5]


@settings(max_examples=40, deadline=None)
@given(
    widths=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    m=st.integers(1, 12),
    room=st.integers(0, 400),
    data=st.data(),
)
def test_units_under_the_budget_fit_however_they_are_allotted(widths, m, room, data):
    """Any split of ``units_under_budget`` units over the eligible layers keeps the parameter count
    within the budget, and the answer is the largest under its stated bound: ``k`` units cost at
    most ``k·c + r·k²/4`` (``c`` the dearest unit, ``r = 1`` when two eligible layers are adjacent)."""
    from clgrow.methods.grow import unit_params
    from clgrow.strategies.schedule import units_under_budget

    model = mlp(m, widths, 3)
    budget = sum(p.numel() for p in model.parameters()) + room
    layers = sorted(data.draw(st.sets(st.integers(0, len(widths) - 1), min_size=1)))
    k = units_under_budget(sites(model), layers, budget)
    c = max(unit_params(sites(model), i) for i in layers)
    r = int(any(i + 1 in layers for i in layers))
    assert (k + 1) * c + math.ceil(r * (k + 1) ** 2 / 4) > room
    split = [0] * len(widths)
    for _ in range(k):
        split[data.draw(st.sampled_from(layers))] += 1
    for layer, c in enumerate(split):
        if c:
            sites(model).add_units(layer, torch.zeros(c, fan_in(model, layer)), torch.zeros(c))
    assert sum(p.numel() for p in model.parameters()) <= budget


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(units={0: [0.5]}), "indices must be integers"),
        (dict(units={0: [True]}), "indices must be integers"),
        (dict(units={0: [0]}, method="swe", nan=True), "NaN or infinite"),
        (dict(units={0: [0]}, method="drop", nan=True), "NaN or infinite"),
        (dict(units={0: [0]}, method="swe", ridge=math.inf), "ridge must be a finite number"),
        (dict(units={0: [0]}, method="swe", ridge=math.nan), "ridge must be a finite number"),
        (dict(units={0: [0]}, min_units=0), "min_units must be an integer >= 1"),
        (dict(units={0: [0]}, min_units=-2), "min_units must be an integer >= 1"),
        (dict(units={0: [0]}, min_units=1.5), "min_units must be an integer >= 1"),
    ],
)
def test_the_python_pruning_api_refuses_bad_input_and_changes_nothing(kwargs, message):
    """NaN in the data would read every unit as dead and write NaN weights through the swe
    transfer; a float index would be cut to an integer: each is refused naming the argument, and
    the model and optimizer are left bit-identical."""
    torch.manual_seed(0)
    model = mlp(5, [6, 6], 3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    opt.zero_grad()
    model(torch.randn(8, 5)).sum().backward()
    opt.step()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    kwargs = dict(kwargs)
    x = torch.randn(16, 5)
    if kwargs.pop("nan", False):
        x[3, 2] = math.nan
    data = [(x, torch.randint(0, 3, (16,)))]
    with pytest.raises(GrowthError, match=message):
        prune(model, kwargs.pop("units"), data=data, optimizer=opt, **kwargs)
    assert sites(model).hidden_sizes == [6, 6]
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("tau", [math.nan, -0.1, math.inf, "0.1"])
def test_select_units_refuses_a_bad_tau_and_nan_data(tau):
    model = mlp(5, [6], 3)
    data = [(torch.randn(8, 5), torch.randint(0, 3, (8,)))]
    with pytest.raises(GrowthError, match="tau must be a finite number >= 0"):
        select_units(model, "dormant", data, tau=tau)
    with pytest.raises(GrowthError, match="NaN or infinite"):
        select_units(model, "dead", [(torch.full((8, 5), math.nan), torch.zeros(8, dtype=torch.long))])
