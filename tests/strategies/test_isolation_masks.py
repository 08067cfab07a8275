"""Isolation: an experience trains the units it owns; every older unit computes exactly what it did,
whatever the optimizer carries; units of a later experience stay inert."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from clgrow import as_growable, cnn, grow, mlp
from clgrow.strategies.isolation import Isolation, split_in_advance
from tests.zoo import ZOO, call, zoo_data


def _train(model: nn.Module, iso: Isolation, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer) -> None:
    model.train()
    for _ in range(4):
        opt.zero_grad()
        nn.functional.cross_entropy(call(model, x), y).backward()
        opt.step()
        iso.restore()


def _activity(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    model.eval()
    with torch.no_grad():
        return as_growable(model).run(x, 0 if hasattr(model, "forward_single_task") else None, capture=True)[1]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["mlp", "cnn", "UserResidualNet", "ResidualMLP", "SlimResNet18"]),
    k=st.integers(2, 8),
    seed=st.integers(0, 2**16),
    carried=st.booleans(),
)
def test_old_units_compute_exactly_what_they_did_while_the_new_experience_trains(kind, k, seed, carried):
    """Grown at experience 1, trained with Adam (its state carried from experience 0, or fresh) and
    weight decay: every unit of experience 0 reads, sums and normalises exactly as before (its
    running statistics too); the new units and the head learn."""
    torch.manual_seed(seed)
    if kind == "mlp":
        model, shape = mlp(6, [7, 5], 3), (6,)
    elif kind == "cnn":
        model, shape = cnn((1, 6, 6), [3, "M", 4], [5], 3), (1, 6, 6)
    else:
        model, shape = ZOO[kind].build(), ZOO[kind].shape
    x, y = torch.rand(12, *shape), torch.randint(0, 3, (12,))
    data = [(x, y)]
    opt = torch.optim.Adam(model.parameters(), lr=0.05, weight_decay=0.1)
    as_growable(model, x)
    if carried:  # experience 0 trains everything: its units own the model
        _train(model, Isolation(model, {}, 0), x, y, opt)
    sizes = as_growable(model).hidden_sizes
    grow(model, k, data, "random", "uniform", new_task=True)
    before = [a.clone() for a in _activity(model, x)]  # at the grown shapes: bit for bit
    head = copy.deepcopy(model)
    opt = torch.optim.Adam(model.parameters(), lr=0.05, weight_decay=0.1)
    if carried:
        opt.load_state_dict({"state": {}, "param_groups": opt.state_dict()["param_groups"]})
    iso = Isolation(model, {0: -1, 1: 1}, 1)
    _train(model, iso, x, y, opt)
    after = _activity(model, x)
    for i, n in enumerate(sizes):
        torch.testing.assert_close(after[i][:, :n], before[i][:, :n], rtol=0, atol=0)
    changed = [not torch.equal(p, q) for p, q in zip(model.parameters(), head.parameters())]
    assert any(changed)  # something learns: the new units, the head
    iso.remove()


def test_a_split_fixed_model_keeps_later_units_inert_until_their_experience():
    torch.manual_seed(0)
    model = mlp(6, [8, 6], 3)
    x, y = torch.rand(16, 6), torch.randint(0, 3, (16,))
    split_in_advance(model, [[4, 3], [6, 5], [8, 6]])
    grown = as_growable(model)
    assert grown.cohort(0).tolist() == [0, 0, 0, 0, 1, 1, 2, 2]
    small = mlp(6, [4, 3], 3)  # the same function as a model of experience 0's widths
    with torch.no_grad():
        small[1].weight.copy_(model[1].weight[:4]), small[1].bias.copy_(model[1].bias[:4])
        small[3].weight.copy_(model[3].weight[:3, :4]), small[3].bias.copy_(model[3].bias[:3])
        small[5].weight.copy_(model[5].weight[:, :3]), small[5].bias.copy_(model[5].bias)
    torch.testing.assert_close(model(x), small(x))
    later = [p.detach().clone() for p in (model[1].weight[4:], model[3].weight[3:])]
    iso = Isolation(model, {0: 0, 1: 1, 2: 2}, 0)
    _train(model, iso, x, y, torch.optim.Adam(model.parameters(), lr=0.05))
    assert torch.equal(model[1].weight[4:], later[0]) and torch.equal(model[3].weight[3:], later[1])
    assert not model[3].weight[:, 4:].any() and not model[5].weight[:, 3:].any()  # still unread
    with pytest.raises(Exception, match="the split ends at"):
        split_in_advance(mlp(6, [8, 6], 3), [[4, 3], [6, 5]])


def test_a_task_heads_old_task_is_answered_exactly_as_before():
    """Task-incremental: the old task's head and units stay put, so its outputs do not move."""
    entry = ZOO["MTSimpleMLP"]
    torch.manual_seed(1)
    model = entry.build()
    (x, _, _), *_ = zoo_data(entry, task=0)
    from tests.zoo import add_task_head

    as_growable(model, x, 0)
    add_task_head(model, 1)
    grow(model, 4, zoo_data(entry, task=1), "swe", "uniform", new_task=True)
    with torch.no_grad():
        old = call(model.eval(), x, 0).clone()  # at the grown shapes: bit for bit
    iso = Isolation(model, {0: -1, 1: 1}, 1)
    (x1, y1, _), *_ = zoo_data(entry, task=1)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    model.train()
    for _ in range(4):
        opt.zero_grad()
        nn.functional.cross_entropy(call(model, x1, 1), y1).backward()
        opt.step()
        iso.restore()
    with torch.no_grad():
        torch.testing.assert_close(call(model.eval(), x, 0), old, rtol=0, atol=0)
