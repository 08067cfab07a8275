"""GrowableMLP: shapes, function-preserving insertion, snapshots, conversion."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from clgrow import GrowableMLP, GrowthError, default_linear_init, grow
from tests.helpers import state_equal


def _backbone() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2))


@settings(max_examples=40, deadline=None)
@given(
    widths=st.lists(st.integers(1, 12), min_size=1, max_size=4),
    in_features=st.integers(1, 10),
    classes=st.integers(1, 6),
    batch=st.integers(1, 9),
    layer_frac=st.floats(0, 0.999),
    k=st.integers(0, 7),
    use_backbone=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_zero_outgoing_insertion_preserves_function(
    widths, in_features, classes, batch, layer_frac, k, use_backbone, seed
):
    torch.manual_seed(seed)
    if use_backbone:
        model = GrowableMLP(8, widths, classes, backbone=_backbone())
        x = torch.randn(batch, 1, 6, 6)
    else:
        model = GrowableMLP(in_features, widths, classes)
        x = torch.randn(batch, in_features)
    layer = int(layer_frac * len(widths))
    before = model(x)
    w, b = default_linear_init(k, model.hidden[layer].in_features)
    idx = model.add_units(layer, w * 10, b * 10, None)  # large incoming weights: output still unchanged
    after = model(x)
    assert model.hidden_sizes[layer] == widths[layer] + k
    assert idx.tolist() == list(range(widths[layer], widths[layer] + k))
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    # and the new units do fire: preservation comes from the zero outgoing weights
    assert model.cohort(layer)[widths[layer] :].tolist() == [1] * k


def test_nonzero_outgoing_changes_function():
    torch.manual_seed(0)
    model = GrowableMLP(4, [5, 5], 3)
    x = torch.randn(8, 4)
    before = model(x)
    model.add_units(0, torch.ones(2, 4), torch.ones(2), torch.ones(5, 2))
    assert not torch.allclose(model(x), before)


def test_add_units_rejects_bad_shapes_without_change():
    model = GrowableMLP(4, [5, 5], 3)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(GrowthError, match=r"shape \(k, 4\)"):
        model.add_units(0, torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(GrowthError, match="outgoing"):
        model.add_units(0, torch.zeros(2, 4), torch.zeros(2), torch.zeros(4, 2))
    with pytest.raises(GrowthError, match="unknown hidden layer 7"):
        model.add_units(7, torch.zeros(2, 4), torch.zeros(2))
    assert state_equal(state, model.state_dict())


def test_input_size_mismatch_is_named():
    model = GrowableMLP(10, [4], 2)
    with pytest.raises(ValueError, match="expects 10 input features"):
        model(torch.randn(3, 11))


def test_flattens_images_like_simple_mlp():
    model = GrowableMLP(28 * 28, [8], 10)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_add_classes_keeps_old_rows():
    torch.manual_seed(0)
    model = GrowableMLP(4, [5], 2)
    x = torch.randn(3, 4)
    before = model(x)
    model.add_classes(3)
    assert model.num_classes == 5
    torch.testing.assert_close(model(x)[:, :2], before)


def test_snapshot_restore_is_bit_identical_and_keeps_parameter_objects():
    torch.manual_seed(0)
    model = GrowableMLP(4, [5, 6], 3)
    ids = [id(p) for p in model.parameters()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    snap = model.snapshot()
    model.add_units(0, torch.ones(2, 4), torch.ones(2), torch.ones(6, 2))
    model.add_units(1, torch.ones(3, 7), torch.ones(3))
    model.add_classes(2)
    model.restore(snap)
    assert state_equal(state, model.state_dict())
    assert [id(p) for p in model.parameters()] == ids
    assert model.hidden_sizes == [5, 6] and model.hidden[1].in_features == 5


def test_from_sequential_copies_weights():
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    model = GrowableMLP.from_sequential(seq)
    x = torch.randn(5, 6)
    torch.testing.assert_close(model(x), seq(x))
    assert model.hidden_sizes == [4, 3]


def test_from_sequential_keeps_dropout_and_refuses_two_rates():
    seq = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Dropout(0.3), nn.Linear(4, 2))
    model = GrowableMLP.from_sequential(seq)
    assert isinstance(model.dropout, nn.Dropout) and model.dropout.p == 0.3
    two = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Dropout(0.3), nn.Linear(4, 3), nn.ReLU(), nn.Dropout(0.5))
    with pytest.raises(GrowthError, match=r"one dropout rate(.|\n)*grow the Sequential itself"):
        GrowableMLP.from_sequential(nn.Sequential(*two, nn.Linear(3, 2)))


def test_non_relu_model_is_refused_clearly():
    seq = nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 2))
    with pytest.raises(GrowthError, match="Tanh"):
        GrowableMLP.from_sequential(seq)


def test_grow_grows_a_plain_sequential_in_place(digits_loader):
    seq = nn.Sequential(nn.Linear(64, 4), nn.ReLU(), nn.Linear(4, 10))
    first = seq[0]
    report = grow(seq, 4, digits_loader, "random", "uniform")
    assert report.added == 4 and seq[0] is first and seq[0].weight.shape == (8, 64) and seq[2].weight.shape == (10, 8)


def test_grow_refuses_a_model_without_a_site_naming_each_layer(digits_loader):
    seq = nn.Sequential(nn.Linear(64, 4), nn.Tanh(), nn.Linear(4, 10))
    before = {k: v.clone() for k, v in seq.state_dict().items()}
    with pytest.raises(GrowthError, match=r"no growth site(.|\n)*0: its output goes to Tanh(.|\n)*2: an output layer"):
        grow(seq, 4, digits_loader)
    assert seq.state_dict().keys() == before.keys()
    assert all(torch.equal(seq.state_dict()[k], v) for k, v in before.items())


@pytest.mark.parametrize(
    "bad",
    [dict(in_features=0), dict(hidden_sizes=[]), dict(hidden_sizes=[3, 0]), dict(num_classes=0), dict(dropout=1.0)],
)
def test_constructor_validates(bad):
    args = dict(in_features=4, hidden_sizes=[3], num_classes=2) | bad
    with pytest.raises(ValueError):
        GrowableMLP(**args)


def test_activation_observers_see_post_relu_activations_until_removed():
    import copy
    import pickle

    model = GrowableMLP(5, [4, 3], 2)
    x = torch.randn(6, 5)
    seen = []
    handle = model.observe_activations(lambda i, h: seen.append((i, h.clone())))
    out = model(x)
    _, captured = model.run(x, capture=True)
    assert [i for i, _ in seen[:2]] == [0, 1]
    assert all(torch.equal(h, c) for (_, h), c in zip(seen[:2], captured))
    assert all((h >= 0).all() for _, h in seen)
    # not part of the model: copies and pickles carry no observer
    assert not copy.deepcopy(model)._observers and not pickle.loads(pickle.dumps(model))._observers
    assert torch.equal(copy.deepcopy(model)(x), out)
    handle.remove()
    n = len(seen)
    model(x)
    assert len(seen) == n


@pytest.mark.parametrize(
    "args",
    [
        (20, "64", 4),
        (20, [64.0], 4),
        (20, [True], 4),
        (20.5, [8], 4),
        (20, [8], 4.0),
        (20, [8], True),
        (20, 64, 4),
        (0, [8], 4),
        (20, [], 4),
    ],
)
def test_widths_must_be_integers(args):
    """No silent coercion: a string, float or bool width is refused, not truncated or split."""
    with pytest.raises(ValueError, match="integer|list"):
        GrowableMLP(*args)
