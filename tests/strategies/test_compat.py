"""EWC and SI keep their stored tensors aligned when parameters grow in two dimensions."""

from __future__ import annotations

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import EWCPlugin, SynapticIntelligencePlugin
from avalanche.training.utils import ParamData
from hypothesis import given
from hypothesis import strategies as st

from clgrow import GrowableMLP, UniformDistributor
from clgrow.strategies import build_strategy
from clgrow.strategies.compat import pad_leading
from tests.strategies.conftest import fast_plugin, quiet


@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), extra=st.lists(st.integers(0, 3), min_size=3, max_size=3))
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
    """(name, ParamData dict, flattened?) of every per-parameter store of the regulariser."""
    if kind == "ewc":
        return [("imp", reg.importances[0], False), ("saved", reg.saved_params[0], False)]
    # SI re-extracts thetas, gradients and the per-experience trajectory itself at every
    # experience/iteration; the importances and the cumulative trajectory persist.
    return [("imp", reg.ewc_data[1], True), ("cum_trajectory", reg.syn_data["cum_trajectory"], True)]


@pytest.mark.parametrize("kind", ["ewc", "si"])
def test_regulariser_state_stays_aligned_after_growth(split_digits, kind):
    """Growth in both dimensions of hidden.1.weight: every stored tensor keeps its old values
    in the leading block (in the parameter's own shape) and gets zero importance elsewhere."""
    model = GrowableMLP(split_digits.in_features, [6, 6, 6], split_digits.num_classes)
    hp = dict(ewc_lambda=10.0) if kind == "ewc" else dict(si_lambda=0.1)
    grow_plugin = fast_plugin(distributor=UniformDistributor(), neurons_per_experience=3)
    seen = {}
    probe = _FirstIteration(lambda strat: seen.update(
        {label: d["hidden.1.weight"].data.clone() for label, d, _ in _stores(reg, kind)}))
    strategy = build_strategy(kind, model, None, plugins=[grow_plugin, probe], evaluator=quiet(),
                              train_mb_size=32, **hp)
    reg = next(p for p in strategy.plugins if isinstance(p, (EWCPlugin, SynapticIntelligencePlugin)))
    stream = split_digits.scenario.train_stream
    strategy.train(stream[0])
    name = "hidden.1.weight"
    marked = {}
    for label, store, flat in _stores(reg, kind):  # known values, so placement can be checked
        value = torch.arange(1.0, 37.0).reshape(6, 6)
        store[name].data = value.flatten() if flat else value
        marked[label] = value
    probe.armed = True
    strategy.train(stream[1])  # grows (hidden.1.weight: 6x6 -> 7x7), then trains with the penalty
    assert model.hidden[1].weight.shape == (7, 7)
    for label, value in marked.items():
        got = seen[label].reshape(7, 7)
        assert torch.equal(got[:6, :6], value), label
        if label != "saved":
            assert got[6].abs().sum() == 0 and got[:, 6].abs().sum() == 0, label
