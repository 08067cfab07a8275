"""Growth of convolutional sites: every extender and distributor on random conv shapes.

Models are drawn at random: VGG-style nets (with and without batch norm, pooling, a flattened or
globally pooled readout), a user's ``nn.Sequential`` (strides, paddings, average pooling, bias-free
convolutions) and ResNets (strided blocks; their residual streams are sites too). The tests are parametrised over the registries, so a new method is covered on every
site kind as soon as it is registered.
"""

from __future__ import annotations

import pickle

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from clgrow import GrowthError, as_growable, cnn, distributors, extenders, grow, resnet
from clgrow.methods.coupling import FactoredCoupling
from clgrow.surgery import unit_view
from tests.clgrow.methods.test_prune import _copy_unit
from tests.helpers import grow_failing_after_extend, norm, producer, sites, state_equal

# Settings under which each built-in extender's insertion leaves the function unchanged (what the
# method promises): its default, or the setting its docstring names. Every registered built-in
# must appear here, so a new extender states how it preserves the function.
PRESERVING: dict[str, tuple[dict, bool]] = {
    "random": ({}, False),
    "net2net": ({"noise": 0.0}, False),
    "gradmax": ({"incoming_norm": 0.0, "passes": 0.25}, False),
    "swe": ({"passes": 0.25}, True),  # at a new task: old outputs unchanged exactly
}
FAST_DIST = {"svod": dict(train_passes=0.25, vote_passes=0.25)}


@st.composite
def conv_models(draw) -> tuple[nn.Module, tuple[int, int, int]]:
    """A random small convolutional growable model and its input shape."""
    torch.manual_seed(draw(st.integers(0, 2**16)))
    c_in, size = draw(st.integers(1, 3)), draw(st.integers(5, 9))
    shape = (c_in, size, size)
    kind = draw(st.sampled_from(["vgg", "sequential", "resnet"]))
    classes = draw(st.integers(2, 4))
    if kind == "resnet":
        blocks = draw(st.lists(st.integers(1, 2), min_size=1, max_size=3))
        return resnet(shape, classes, nf=draw(st.integers(1, 4)), blocks=blocks), shape
    if kind == "vgg":
        spec: list = []
        h = size
        for _ in range(draw(st.integers(1, 3))):
            spec.append(draw(st.integers(1, 5)))
            if h >= 2 and draw(st.booleans()):
                spec.append("M")
                h //= 2
        hidden = draw(st.lists(st.integers(1, 6), max_size=2))
        model = cnn(
            shape,
            spec,
            hidden,
            classes,
            batch_norm=draw(st.booleans()),
            kernel_size=draw(st.sampled_from([1, 3])),
            readout=draw(st.sampled_from(["flatten", "pool"])),
        )
        return model, shape
    # a user's Sequential: strides, paddings and average pooling
    layers: list[nn.Module] = []
    c, h = c_in, size
    for _ in range(draw(st.integers(1, 2))):
        out, k = draw(st.integers(1, 5)), draw(st.sampled_from([1, 2, 3]))
        stride, pad = draw(st.integers(1, 2)), draw(st.integers(0, 1))
        if (h + 2 * pad - k) // stride + 1 < 1:
            stride, pad = 1, k // 2
        layers += [nn.Conv2d(c, out, k, stride, pad, bias=draw(st.booleans()))]
        h = (h + 2 * pad - k) // stride + 1
        if draw(st.booleans()):
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU())
        if h >= 2 and draw(st.booleans()):
            layers.append(draw(st.sampled_from([nn.MaxPool2d(2), nn.AvgPool2d(2)])))
            h //= 2
        c = out
    pooled = draw(st.booleans())
    layers += [nn.AdaptiveAvgPool2d(1)] if pooled else []
    layers.append(nn.Flatten())
    width = c if pooled else c * h * h
    for w in draw(st.lists(st.integers(1, 5), max_size=2)):
        layers += [nn.Linear(width, w), nn.ReLU()]
        width = w
    layers.append(nn.Linear(width, classes))
    seq = nn.Sequential(*layers)
    as_growable(seq, torch.zeros(2, *shape))
    return seq, shape


def _data(shape: tuple[int, int, int], classes: int, n: int = 24, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *shape, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return [(x[i : i + 8], y[i : i + 8]) for i in range(0, n, 8)]


def _settle(model: nn.Module, loader) -> None:
    """A few training steps, so batch-norm statistics and weights are not at their init."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for x, y in loader:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def test_every_built_in_extender_states_its_preserving_settings():
    import clgrow.methods  # noqa: F401  (the built-ins)

    built_in = {name for name in extenders if extenders.params(name).__module__.startswith("clgrow")}
    assert built_in <= set(PRESERVING), f"add {sorted(built_in - set(PRESERVING))} to PRESERVING"


@pytest.mark.parametrize("ext_name", sorted(PRESERVING))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=conv_models(), k=st.integers(1, 7), train_mode=st.booleans())
def test_insertion_preserves_the_function_on_every_site_kind(ext_name, drawn, k, train_mode):
    model, shape = drawn
    classes = sites(model).num_classes
    loader = _data(shape, classes)
    _settle(model, loader)
    kwargs, new_task = PRESERVING[ext_name]
    x = torch.rand(16, *shape)
    model.train(train_mode)
    with torch.no_grad():
        before = model(x)
    sizes = sites(model).hidden_sizes
    report = grow(model, k, loader, extenders[ext_name](**kwargs), "uniform", new_task=new_task)
    model.train(train_mode)
    with torch.no_grad():
        after = model(x)
    assert sum(sites(model).hidden_sizes) == sum(sizes) + k
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
    for layer, idx in report.new_units.items():
        assert torch.equal(sites(model).cohort(layer)[idx], torch.ones_like(idx))


@pytest.mark.parametrize("ext_name", sorted(extenders))
@pytest.mark.parametrize("dist_name", sorted(distributors))
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=conv_models(), k=st.integers(1, 6))
def test_every_method_grows_every_site_kind_and_every_parameter_trains(ext_name, dist_name, drawn, k):
    """Allocations sum to K, widths follow, and one optimizer over the parameters reaches all of them."""
    model, shape = drawn
    loader = _data(shape, sites(model).num_classes)
    dist = distributors[dist_name](**FAST_DIST.get(dist_name, {}))
    sizes = sites(model).hidden_sizes
    report = grow(model, k, loader, extenders[ext_name](**PRESERVING.get(ext_name, ({}, False))[0]), dist)
    assert sum(report.allocation.values()) == k
    assert [b + report.allocation.get(i, 0) for i, b in enumerate(sizes)] == sites(model).hidden_sizes
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    covered = {id(p) for g in opt.param_groups for p in g["params"]}
    model.train()
    x, y = loader[0]
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    for name, p in model.named_parameters():
        assert id(p) in covered and p.grad is not None, name
    opt.step()


@settings(max_examples=15, deadline=None)
@given(drawn=conv_models(), k=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_swe_conserves_the_coupled_filters_sums(drawn, k, seed):
    """Plain training (the paper's ``move``): at every site, the column sums of ``[filters | b]``
    after adjustment equal those of the old filters plus the inserted new ones."""
    model, shape = drawn
    loader = _data(shape, sites(model).num_classes, seed=seed)
    layer = 0  # a plain site, or a ResNet's first stream (its stem and blocks' second convolutions)
    inserted: list[torch.Tensor] = []
    real = FactoredCoupling.__init__

    def spy(self, lin, n_old, *a, **kw):
        real(self, lin, n_old, *a, **kw)
        inserted.append((lin, torch.cat([self.weight, lin.bias[:, None]], 1).detach().clone()))

    FactoredCoupling.__init__ = spy  # type: ignore[method-assign]
    try:
        grow(model, k, loader, extenders["swe"](passes=1.0, schedule="sequential"), "fixed", layers=[layer])
    finally:
        FactoredCoupling.__init__ = real  # type: ignore[method-assign]
    members = sites(model).members(layer)
    assert len(inserted) == len(members)  # one coupling per producer of the site
    for r, (lin, start) in zip(members, inserted):
        assert lin is r.producer
        after = torch.cat([r.rows(), r.bias[:, None]], 1).detach()
        torch.testing.assert_close(after.sum(0), start.sum(0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("ext_name", sorted(extenders))
@settings(max_examples=6, deadline=None)
@given(drawn=conv_models(), k=st.integers(1, 5))
def test_a_failed_step_leaves_a_conv_model_bit_identical(ext_name, drawn, k):
    """The extender does all its work (every insertion, adjustment and batch-norm copy), then the
    step fails: the model is put back, tensors, shapes, cohorts and parameter objects alike."""
    model, shape = drawn
    loader = _data(shape, sites(model).num_classes)
    state = {n: v.clone() for n, v in model.state_dict().items()}
    ids = [id(p) for p in model.parameters()]
    sizes = sites(model).hidden_sizes
    ext = extenders[ext_name](**PRESERVING.get(ext_name, ({}, False))[0])
    grow_failing_after_extend(model, k, loader, ext)
    assert sites(model).hidden_sizes == sizes
    assert state_equal(state, model.state_dict())
    assert [id(p) for p in model.parameters()] == ids
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            assert mod.in_channels == mod.weight.shape[1] and mod.out_channels == mod.weight.shape[0]
        if isinstance(mod, nn.BatchNorm2d):
            assert mod.num_features == mod.running_mean.shape[0]


@settings(max_examples=8, deadline=None)
@given(drawn=conv_models(), k=st.integers(1, 5))
def test_a_grown_conv_model_pickles_and_resumes_bit_identically(drawn, k):
    """What Avalanche's checkpoint does (a pickle of the whole model): shapes, cohorts and every
    tensor come back, and training continues identically from the restored copy."""
    model, shape = drawn
    loader = _data(shape, sites(model).num_classes)
    grow(model, k, loader, "swe", "uniform")
    clone = pickle.loads(pickle.dumps(model))
    assert sites(clone).hidden_sizes == sites(model).hidden_sizes
    for i in range(len(sites(model).hidden_sizes)):
        assert torch.equal(sites(clone).cohort(i), sites(model).cohort(i))
    assert state_equal(model.state_dict(), clone.state_dict())
    for m in (model, clone):
        torch.manual_seed(3)
        _settle(m, loader)
    assert state_equal(model.state_dict(), clone.state_dict())


def test_unit_view_sees_each_consumer_kind_per_channel():
    """A flattened consumer's block, a conv consumer's kernel and a pooled column all belong to
    their channel: zeroing channel 1 in the view zeroes exactly its inputs."""
    model = cnn((1, 6, 6), [2, "M", 3], [4], 3, batch_norm=False)
    conv_next = producer(model, 1).weight
    v = unit_view(conv_next.detach().clone(), 2)
    assert v.shape == (3, 2, 9)
    flat = producer(model, 2).weight  # reads 3 channels x 3x3 positions
    fv = unit_view(flat.detach().clone(), 3)
    assert fv.shape == (4, 3, 9)
    fv[:, 1] = 0
    w = fv.reshape_as(flat)
    assert (w[:, 9:18] == 0).all() and (w[:, :9] == flat[:, :9]).all()


def test_dead_and_dormant_channels_are_measured_per_channel():
    """A channel whose filter and bias are zeroed (no batch norm) is zero at every position: dead."""
    from clgrow import measure_inactivity

    torch.manual_seed(0)
    model = cnn((1, 8, 8), [4, "M", 4], [5], 3, batch_norm=False)
    with torch.no_grad():
        producer(model, 1).weight[2] = 0
        producer(model, 1).bias[2] = -1.0
    stats = measure_inactivity(model, _data((1, 8, 8), 3))
    assert stats.layers[1].dead == 1 and stats.layers[1].units == 4
    assert stats.layers[0].units == 4 and stats.layers[2].units == 5


def test_redo_resets_channels_and_their_batch_norm():
    from clgrow.methods.plasticity import reset_units

    torch.manual_seed(0)
    model = cnn((1, 8, 8), [4, 4], [], 3)
    loader = _data((1, 8, 8), 3)
    _settle(model, loader)
    units = torch.tensor([1, 3])
    reset_units(model, 0, units)
    assert (unit_view(producer(model, 1).weight, 4)[:, units] == 0).all()
    bn = norm(model, 0)
    assert torch.equal(bn.running_var[units], torch.ones(2)) and torch.equal(bn.weight[units], torch.ones(2))
    # the reset channels are read by nobody: the function on the other channels is that of the model
    x = torch.rand(4, 1, 8, 8)
    model.eval()
    with torch.no_grad():
        out = model(x)
        unit_view(producer(model, 1).weight, 4)[:, units] = 5.0
        assert not torch.allclose(model(x), out)


def test_a_users_sequential_grows_in_place_and_names_what_it_cannot_grow():
    torch.manual_seed(0)
    seq = nn.Sequential(
        nn.Conv2d(1, 3, 3, 2, 1, bias=False),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(12, 5),
        nn.ReLU(),
        nn.Linear(5, 2),
    )
    grown = as_growable(seq, torch.rand(2, 1, 8, 8))
    assert grown.hidden_sizes == [3, 5] and grown.consumers(0)[0].kind == "flatten"
    sigmoid = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sigmoid(), nn.Flatten(), nn.Linear(72, 2))
    with pytest.raises(GrowthError, match=r"0: its output goes to Sigmoid"):
        as_growable(sigmoid, torch.rand(2, 1, 8, 8))


def test_image_models_refuse_inputs_of_the_wrong_shape_and_accept_flat_rows():
    model = cnn((1, 8, 8), [2], [], 3)
    assert model(torch.rand(2, 64)).shape == (2, 3)
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, 1, 8, 8\)"):
        model(torch.rand(2, 3, 8, 8))


def test_swe_trains_exactly_the_new_channels_blocks_of_a_flattened_consumer():
    """The consumer mask covers a new channel's whole ``H·W`` block of columns and nothing else."""
    from clgrow import SWE

    model = cnn((1, 4, 4), [2, 3], [5], 2, batch_norm=False)
    grown = sites(model)
    grown.add_units(1, torch.zeros(2, 18), torch.zeros(2))  # channels 3, 4 are new
    reader = grown.consumers(1)[0]
    assert reader.kind == "flatten" and reader.module is producer(model, 2)
    mask = SWE._consumer_mask(grown, 1, reader, 3, coupled=True, cohort=1, consumers="all")
    assert mask.shape == reader.weight.shape == (5, 5 * 16)
    assert (mask[:, 48:] == 1).all() and (mask[:, :48] == 0).all()


@settings(max_examples=15, deadline=None)
@given(drawn=conv_models(), seed=st.integers(0, 2**16))
def test_removing_dead_channels_is_exact_and_prune_grow_prune_keeps_everything_optimized(drawn, seed):
    """Channels zeroed to death (filter 0, bias -1, no batch norm between: drawn models with one
    are given a dead channel by its batch-norm bias instead) leave without changing the outputs on
    the data; the optimizer then covers every parameter through grow and prune again."""
    from clgrow.methods.prune import prune, select_units

    model, shape = drawn
    loader = _data(shape, sites(model).num_classes, seed=seed)
    g = torch.Generator().manual_seed(seed)
    grown = sites(model)
    grown.prepare()  # a bias for every producer: a dead channel is a zero filter and a bias of -1
    with torch.no_grad():
        for layer, n in enumerate(grown.hidden_sizes):
            if n < 2:
                continue
            c = int(torch.randint(0, n, (1,), generator=g))
            for r in grown.members(layer):  # every producer of a residual stream
                r.rows()[c] = 0
                r.bias[c] = -1.0
            for bn in grown.norms(layer):  # batch norm would re-centre it: kill it after the norm
                bn.weight[c], bn.bias[c] = 0.0, -1.0
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    _settle_with(model, loader, opt)
    model.eval()
    x = torch.cat([b[0] for b in loader])
    with torch.no_grad():
        before = model(x)
    dead = select_units(model, "dead", [(x, torch.zeros(len(x), dtype=torch.long))])
    dead = {i: idx[: sites(model).hidden_sizes[i] - 1] for i, idx in dead.items()}  # every layer keeps one
    report = prune(model, dead, optimizer=opt)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-5)
    assert sum(report.hidden_sizes_after) == sum(report.hidden_sizes_before) - report.count
    grow(model, 3, loader, "random", "uniform")
    prune(model, {0: [0]} if sites(model).hidden_sizes[0] > 1 else {}, optimizer=None)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    _settle_with(model, loader, opt)  # shapes agree everywhere, or this raises
    covered = {id(p) for grp in opt.param_groups for p in grp["params"]}
    assert all(id(p) in covered for p in model.parameters())


def _settle_with(model: nn.Module, loader, opt) -> None:
    model.train()
    for x, y in loader:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def test_a_failed_channel_prune_leaves_the_model_bit_identical():
    from clgrow.methods.prune import prune

    torch.manual_seed(0)
    model = cnn((1, 8, 8), [4, "M", 4], [5], 3)
    state = {n: v.clone() for n, v in model.state_dict().items()}
    with pytest.raises(GrowthError, match="fewer than 1"):
        prune(model, {0: [1], 1: [0, 1, 2, 3]})
    assert state_equal(state, model.state_dict()) and sites(model).hidden_sizes == [4, 4, 5]


@settings(max_examples=20, deadline=None)
@given(drawn=conv_models(), seed=st.integers(0, 2**16))
def test_swe_prune_transfer_is_exact_for_channels_that_copy_a_staying_one(drawn, seed):
    """Each site's channel 1 (and the last, when there are three or more) made a positive
    multiple of channel 0: SWE's reverse transfer moves it into channel 0 and the outputs stay."""
    from clgrow.methods.prune import prune

    model, shape = drawn
    loader = _data(shape, sites(model).num_classes, seed=seed)
    _settle(model, loader)
    model.eval()
    leaving: dict[int, list[int]] = {}
    for layer, n in enumerate(sites(model).hidden_sizes):
        if n >= 2:
            leaving[layer] = [1] if n < 3 else [1, n - 1]
            for u in leaving[layer]:
                _copy_unit(model, layer, 0, u, 0.5 + u)
    x = torch.cat([b[0] for b in loader])
    with torch.no_grad():
        before = model(x)
    report = prune(model, leaving, method="swe", data=loader, ridge=1e-9)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), before, rtol=1e-4, atol=1e-4)
    assert report.count == sum(len(v) for v in leaving.values())
