"""Multiply-adds counted from layer shapes, checked against counts done by hand."""

from __future__ import annotations

import torch

from clgrow import grow, mlp
from clgrow.measure.compute import ComputeCounter, counting, phase


def test_a_forward_and_backward_pass_are_counted_by_hand():
    model = mlp(4, [3], 2)
    x = torch.randn(5, 4)
    counter = ComputeCounter()
    with counting(counter, model):
        model(x).sum().backward()  # forward 5·(4·3 + 3·2) = 90; backward 2·90 − 5·4·3 = 120
        with torch.no_grad(), phase("eval"):
            model(x)  # forward only
    assert counter.forward == {"train": 90, "eval": 90, "growth": 0, "probe": 0}
    assert counter.backward == {"train": 120, "eval": 0, "growth": 0, "probe": 0}
    assert counter.to_dict()["train_macs"] == 210
    model(x)  # outside a counter: nothing is counted
    assert counter.total("train") == 210


def test_growth_is_counted_in_its_phase_and_data_free_growth_costs_nothing(digits_loader):
    torch.manual_seed(0)
    loss = torch.nn.functional.cross_entropy
    for extender, distributor, spends in (("random", "uniform", False), ("swe", "svod", True)):
        model = mlp(64, [8, 8], 10)
        counter = ComputeCounter()
        with counting(counter, model), phase("growth"):
            grow(model, 4, digits_loader, extender, distributor, loss)
        assert (counter.total("growth") > 0) == spends, extender
        assert counter.total("train") == 0
    # SVoD's candidate copy is a model of its own: its passes count too
    model = mlp(64, [8, 8], 10)
    alone, with_copy = ComputeCounter(), ComputeCounter()
    with counting(alone, model), phase("growth"):
        grow(model, 4, digits_loader, "swe", "uniform", loss)
    model = mlp(64, [8, 8], 10)
    with counting(with_copy, model), phase("growth"):
        grow(model, 4, digits_loader, "swe", "svod", loss)
    assert with_copy.total("growth") > alone.total("growth")
