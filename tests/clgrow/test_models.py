"""clgrow's own models: plain modules whose sites are known when built, grown like any other."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from clgrow import GrowthError, as_growable, cnn, default_init, grow, mlp, resnet
from clgrow.models import site_order
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
        x = torch.randn(batch, 1, 6, 6)
        model = mlp(8, widths, classes, backbone=_backbone(), example=x)
    else:
        model = mlp(in_features, widths, classes)
        x = torch.randn(batch, in_features)
    grown = as_growable(model)
    assert grown.hidden_sizes == widths  # the backbone's convolution is fixed: never a site
    layer = int(layer_frac * len(widths))
    before = model(x)
    w, b = default_init(k, grown.members(layer)[0].fan_in)
    idx = grown.add_units(layer, w * 10, b * 10, None)  # large incoming weights: output still unchanged
    after = model(x)
    assert grown.hidden_sizes[layer] == widths[layer] + k
    assert idx.tolist() == list(range(widths[layer], widths[layer] + k))
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    assert grown.cohort(layer)[widths[layer] :].tolist() == [1] * k


def test_builders_make_plain_modules_of_standard_layers():
    model = mlp(4, [5, 6], 3, dropout=0.2)
    assert type(model) is nn.Sequential
    assert [type(m).__name__ for m in model] == [
        "Flatten", "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"
    ]  # fmt: skip
    net = cnn((1, 8, 8), [4, "M", 6], [5], 3)
    assert type(net) is nn.Sequential and as_growable(net).hidden_sizes == [4, 6, 5]
    # a plain module trains, saves and loads as the layers it is made of
    fresh = cnn((1, 8, 8), [4, "M", 6], [5], 3)
    fresh.load_state_dict(net.state_dict())
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(fresh(x), net(x))


def test_nonzero_outgoing_changes_function():
    torch.manual_seed(0)
    model = mlp(4, [5, 5], 3)
    x = torch.randn(8, 4)
    before = model(x)
    as_growable(model).add_units(0, torch.ones(2, 4), torch.ones(2), torch.ones(5, 2))
    assert not torch.allclose(model(x), before)


def test_add_units_rejects_bad_shapes_without_change():
    model = mlp(4, [5, 5], 3)
    grown = as_growable(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(GrowthError, match=r"shape \(k, 4\)"):
        grown.add_units(0, torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(GrowthError, match="outgoing"):
        grown.add_units(0, torch.zeros(2, 4), torch.zeros(2), torch.zeros(4, 2))
    with pytest.raises(GrowthError, match="unknown growth site 7"):
        grown.add_units(7, torch.zeros(2, 4), torch.zeros(2))
    assert state_equal(state, model.state_dict())


def test_flattens_images_like_simple_mlp():
    model = mlp(28 * 28, [8], 10)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_add_classes_keeps_old_rows():
    torch.manual_seed(0)
    model = mlp(4, [5], 2)
    x = torch.randn(3, 4)
    before = model(x)
    grown = as_growable(model)
    grown.add_classes(3)
    assert grown.num_classes == 5 and model(x).shape == (3, 5)
    torch.testing.assert_close(model(x)[:, :2], before)


def test_snapshot_restore_is_bit_identical_and_keeps_parameter_objects():
    torch.manual_seed(0)
    model = mlp(4, [5, 6], 3)
    grown = as_growable(model)
    ids = [id(p) for p in model.parameters()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    snap = grown.snapshot()
    grown.add_units(0, torch.ones(2, 4), torch.ones(2), torch.ones(6, 2))
    grown.add_units(1, torch.ones(3, 7), torch.ones(3))
    grown.add_classes(2)
    grown.restore(snap)
    assert state_equal(state, model.state_dict())
    assert [id(p) for p in model.parameters()] == ids
    assert grown.hidden_sizes == [5, 6] and model[3].in_features == 5


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
        mlp(**args)


def test_activation_observers_see_post_relu_activations_until_removed():
    model = mlp(5, [4, 3], 2)
    grown = as_growable(model)
    x = torch.randn(6, 5)
    seen = []
    handle = grown.observe_activations(lambda i, h: seen.append((i, h.clone())))
    out = model(x)
    _, captured = grown.run(x, capture=True)
    assert [i for i, _ in seen[:2]] == [0, 1]
    assert all(torch.equal(h, c) for (_, h), c in zip(seen[:2], captured))
    assert all((h >= 0).all() for _, h in seen)
    n = len(seen)
    # observers are not part of the model: copies and pickles of it observe nothing
    assert torch.equal(copy.deepcopy(model)(x), out)
    assert torch.equal(pickle.loads(pickle.dumps(model))(x), out)
    assert len(seen) == n
    handle.remove()
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
        mlp(*args)


def test_resnet_sites_are_streams_and_inner_channels_and_rebuild_from_widths():
    model = resnet((3, 16, 16), 4, nf=4, blocks=(2, 2))
    grown = as_growable(model)
    # stage 1: its stream and two blocks' inner channels; stage 2: block 1's inner, the stream, block 2's inner
    assert grown.hidden_sizes == [4, 4, 4, 8, 8, 8]
    assert [grown.stream(i) for i in range(6)] == [True, False, False, False, True, False]
    assert [m.producer for m in grown.sites[0].members] == ["stem.0", "blocks.0.conv2", "blocks.1.conv2"]
    order = site_order((2, 2))
    assert order == [
        ("stream", 0, 0), ("inner", 0, 0), ("inner", 0, 1), ("inner", 1, 0), ("stream", 1, 0), ("inner", 1, 1)
    ]  # fmt: skip
    # the order the builder rebuilds from is the order the trace finds, for any number of blocks
    for blocks in ((1,), (3, 1, 2), (2, 2, 2, 2)):
        grown = as_growable(resnet((3, 8, 8), 2, nf=2, blocks=blocks))
        assert [grown.stream(i) for i in range(grown.num_hidden_layers)] == [
            k == "stream" for k, _, _ in site_order(blocks)
        ]
    widths = [5, 6, 7, 9, 10, 11]
    rebuilt = resnet((3, 16, 16), 4, nf=4, blocks=(2, 2), widths=widths)
    assert as_growable(rebuilt).hidden_sizes == widths
    with pytest.raises(ValueError, match="6 site widths"):
        resnet((3, 16, 16), 4, nf=4, blocks=(2, 2), widths=[5, 6])


def test_images_are_refused_in_a_shape_the_model_does_not_take():
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, 1, 8, 8\) or \(batch, 64\)"):
        cnn((1, 8, 8), [4], [], 3)(torch.rand(2, 65))


def test_pickles_of_clgrow_0_1_load_from_moved_modules_and_refuse_its_removed_models():
    """Avalanche's checkpoints pickle the strategy: a method object pickled under its old module
    loads; a GrowableMLP (gone: models are plain modules) is refused naming what replaced it."""
    from clgrow.methods.swe import SWE

    text = pickle.dumps(SWE(passes=0.3), protocol=0)  # protocol 0 names a class as "c<module>\n<name>"
    old = text.replace(b"cclgrow.methods.swe\nSWE", b"cclgrow.swe\nSWE")
    assert old != text
    loaded = pickle.loads(old)
    assert type(loaded) is SWE and loaded.passes == 0.3
    removed = text.replace(b"cclgrow.methods.swe\nSWE", b"cclgrow.model\nGrowableMLP")
    with pytest.raises(ImportError, match=r"clgrow\.model: .*GrowableMLP.*clgrow\.mlp"):
        pickle.loads(removed)
    from clgrow.strategies import multihead

    with pytest.raises(AttributeError, match="with_task_heads"):
        multihead.MultiHeadGrowableMLP  # noqa: B018
