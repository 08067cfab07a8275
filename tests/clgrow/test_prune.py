"""Removing units: exact for dead units, transactional, optimizer state sliced (issue 28, started)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from clgrow import GrowableMLP, grow
from clgrow.errors import GrowthError
from clgrow.prune import prune, select_units


def _kill(model: GrowableMLP, layer: int, units: list[int]) -> None:
    """Make units dead on any input: zero incoming weights, negative bias."""
    with torch.no_grad():
        model.hidden[layer].weight[units] = 0.0
        model.hidden[layer].bias[units] = -1.0


@settings(max_examples=40, deadline=None)
@given(
    widths=st.lists(st.integers(2, 9), min_size=1, max_size=3),
    m=st.integers(1, 6),
    classes=st.integers(1, 4),
    data=st.data(),
)
def test_removing_dead_units_leaves_the_outputs_on_the_data_unchanged(widths, m, classes, data):
    torch.manual_seed(data.draw(st.integers(0, 2**16)))
    model = GrowableMLP(m, widths, classes)
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
    cohorts = [model.cohort(i).clone() for i in range(len(widths))]
    report = prune(model, chosen)
    assert report.hidden_sizes_after == [n - len(chosen.get(i, [])) for i, n in enumerate(widths)]
    torch.testing.assert_close(model(x), before, rtol=0, atol=1e-6)
    for i, c in enumerate(cohorts):
        keep = [j for j in range(widths[i]) if j not in set(chosen.get(i, torch.empty(0)).tolist())]
        assert torch.equal(model.cohort(i), c[keep])


def test_a_refused_or_failed_prune_leaves_model_and_optimizer_bit_identical(monkeypatch):
    torch.manual_seed(0)
    model = GrowableMLP(5, [6, 6], 3)
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
    import clgrow.prune as P

    real, calls = P._remove, []

    def fail_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return real(*a, **k)

    monkeypatch.setattr(P, "_remove", fail_second)
    with pytest.raises(RuntimeError, match="disk on fire"):
        prune(model, {0: [0], 1: [2]}, optimizer=opt)
    assert model.hidden_sizes == [6, 6]
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert [p for g in opt.param_groups for p in g["params"]] == params
    assert all(p in opt.state for p in params)


def test_the_optimizer_keeps_the_state_of_the_units_that_stay():
    torch.manual_seed(0)
    model = GrowableMLP(5, [6, 4], 3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 5)).sum().backward()
        opt.step()
    w0, v1 = model.hidden[0].weight, model.hidden[1].weight
    m0, mv = opt.state[w0]["exp_avg"].clone(), opt.state[v1]["exp_avg"].clone()
    prune(model, {0: [1, 4]}, optimizer=opt)
    keep = [0, 2, 3, 5]
    assert torch.equal(opt.state[model.hidden[0].weight]["exp_avg"], m0[keep])
    assert torch.equal(opt.state[model.hidden[1].weight]["exp_avg"], mv[:, keep])
    optimized = {id(p) for g in opt.param_groups for p in g["params"]}
    assert optimized == {id(p) for p in model.parameters()}  # every parameter is still optimized
    opt.zero_grad()
    model(torch.randn(8, 5)).sum().backward()
    opt.step()  # and the sliced state fits


def test_prune_grow_prune_keeps_every_parameter_optimized():
    torch.manual_seed(0)
    model = GrowableMLP(5, [6, 6], 3)
    x = torch.randn(32, 5)
    _kill(model, 0, [2, 3])
    prune(model, select_units(model, "dead", [(x, torch.zeros(32, dtype=torch.long))]))
    grow(model, 4, [(x, torch.zeros(32, dtype=torch.long))], "random", "uniform")
    grown = model.hidden_sizes
    assert grown[0] <= 4 + 2  # two dead units left layer 0 before it grew
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    prune(model, select_units(model, "norm", count={0: 1, 1: 2}), optimizer=opt)
    assert model.hidden_sizes == [grown[0] - 1, grown[1] - 2]
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in model.parameters()}
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_selectors():
    torch.manual_seed(0)
    model = GrowableMLP(4, [5], 2)
    _kill(model, 0, [1])
    data = [(torch.randn(20, 4), torch.zeros(20, dtype=torch.long))]
    assert select_units(model, "dead", data)[0].tolist()[:1] == [1]
    assert 1 in select_units(model, "dormant", data, tau=0.025)[0].tolist()
    with torch.no_grad():
        model.head.weight[:, 3] = 0.0
    assert select_units(model, "norm", count={0: 1})[0].tolist() == [3]
    with pytest.raises(GrowthError, match="unknown selector"):
        select_units(model, "random")
    with pytest.raises(GrowthError, match="needs data"):
        select_units(model, "dead")
