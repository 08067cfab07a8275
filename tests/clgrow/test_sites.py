"""Growth of models clgrow did not build: sites found by tracing, and the invariants over a zoo.

The zoo (tests/zoo.py) holds Avalanche's SimpleMLP, SimpleCNN, SlimResNet18 and their multi-task
versions, torchvision's resnet18 and vgg11_bn, and a user's module with functional ReLUs and a
residual add. Every test is parametrised over it and over the registries, so a new method is
checked on every model as soon as it is registered.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

pytest.importorskip("avalanche")
pytest.importorskip("torchvision")

from clgrow import GrowthError, distributors, extenders, grow, measure_inactivity
from clgrow.discovery import find_sites
from clgrow.methods.coupling import FactoredCoupling
from clgrow.sites import GrowableModule, as_growable
from tests.clgrow.test_conv_sites import FAST_DIST, PRESERVING
from tests.helpers import grow_failing_after_extend, sites, state_equal
from tests.zoo import ZOO, ResidualMLP, UserResidualNet, add_task_head, call, zoo_data

NAMES = sorted(ZOO)
_FEW = settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: torchvision's full-size models: the methods that train on them (GradMax's gradient products,
#: SVoD's candidate copy) take tens of seconds there, so those cases run in the slow suite
HEAVY = {"resnet18", "vgg11_bn"}


def _cases(methods: list[str], heavy: tuple[str, ...] = ("gradmax", "swe")) -> list:
    """(model, method) pairs, the costly ones on torchvision's models marked slow; vgg11_bn (9 M
    parameters) runs only random growth in the default suite."""
    return [
        pytest.param(n, m, marks=pytest.mark.slow)
        if (n in HEAVY and m in heavy) or (n == "vgg11_bn" and m != "random")
        else pytest.param(n, m)
        for n in NAMES
        for m in methods
    ]


#: The zoo for tests that run one costly method on each model: vgg11_bn in the slow suite.
LIGHT_NAMES = [pytest.param(n, marks=pytest.mark.slow) if n == "vgg11_bn" else n for n in NAMES]


def _no_dropout(model: nn.Module) -> nn.Module:
    """Train mode compares batch-norm's batch statistics, not dropout's masks (a wider layer
    draws different masks for the same units)."""
    for mod in model.modules():
        if isinstance(mod, nn.Dropout):
            mod.p = 0.0
    return model


@pytest.mark.parametrize("name", NAMES)
def test_the_trace_finds_every_site_and_names_the_rest(name):
    entry = ZOO[name]
    model = entry.build()
    found = find_sites(model, zoo_data(entry)[0][0], 0)
    assert len(found.sites) == entry.sites, found.describe()
    convs_and_linears = [p for p, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    named = {p for s in found.sites for p in s.producers} | {r.module for r in found.refused}
    assert named == set(convs_and_linears)
    assert all(r.reason for r in found.refused)
    # the head reads the last site only, except in residual networks (the last stream: blocks read it too)
    reads_out = [s.reads_out for s in found.sites]
    residual = name in ("SlimResNet18", "MTSlimResNet18", "resnet18", "ResidualMLP")
    assert reads_out == [False] * (len(reads_out) - 1) + [not residual]


def test_a_residual_stream_is_one_site_and_other_activations_are_refused_with_their_reason():
    found = find_sites(UserResidualNet(), torch.rand(4, 20))
    reasons = {r.module: r.reason for r in found.refused}
    assert [s.producers for s in found.sites] == [("inp", "b"), ("a",), ("c",)]
    assert found.sites[0].stream and [c.path for c in found.sites[0].consumers] == ["a", "c"]
    assert "output" in reasons["head"]
    gelu = nn.Sequential(nn.Linear(4, 3), nn.GELU(), nn.Linear(3, 2))
    with pytest.raises(GrowthError, match=r"no growth site(.|\n)*0: its output goes to GELU"):
        as_growable(gelu, torch.rand(2, 4))
    # a transformer-style stream: its batch norms widen with it; a layer norm mixes units, so its stream is refused
    mlp_stream = find_sites(ResidualMLP(), torch.rand(4, 20)).sites[0]
    assert mlp_stream.producers == ("embed", "fc2.0", "fc2.1") and mlp_stream.norms == ("norms.0", "norms.1")
    assert [c.path for c in mlp_stream.consumers] == ["fc1.0", "fc1.1", "head"] and mlp_stream.stream
    layered = ResidualMLP()
    layered.norms = nn.ModuleList(nn.LayerNorm(12) for _ in range(2))
    found = find_sites(layered, torch.rand(4, 20))
    assert [s.producers for s in found.sites] == [("fc1.0",), ("fc1.1",)]
    assert "its output goes to LayerNorm (norms.0), not to a ReLU" in {r.reason for r in found.refused}
    grouped = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    assert "grouped" in find_sites(grouped, torch.rand(2, 4, 3, 3)).refused[0].reason


@pytest.mark.parametrize(("name", "ext_name"), _cases(sorted(PRESERVING), heavy=("gradmax",)))
@pytest.mark.parametrize("train_mode", [False, True])
@_FEW
@given(k=st.integers(1, 6))
def test_insertion_preserves_the_function_of_every_zoo_model(name, ext_name, train_mode, k):
    """A multi-task model grows on a new task's data (its head added as Avalanche adds it) and
    keeps the old task's outputs: SWE trains the new task's own head by design."""
    entry = ZOO[name]
    torch.manual_seed(0)
    model = _no_dropout(entry.build())
    task = 1 if entry.multi_task else 0
    add_task_head(model, task)
    loader = zoo_data(entry, task=task)
    kwargs, new_task = PRESERVING[ext_name]
    x = torch.rand(8, *entry.shape)
    model.train(train_mode)
    with torch.no_grad():
        before = call(model, x)
    report = grow(model, k, loader, extenders[ext_name](**kwargs), "uniform", new_task=new_task)
    assert report.added == k
    model.train(train_mode)
    with torch.no_grad():
        after = call(model, x)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
    grown = as_growable(model)
    for layer, idx in report.new_units.items():
        assert torch.equal(grown.cohort(layer)[idx], torch.ones_like(idx))


@pytest.mark.parametrize(("name", "ext_name"), _cases(sorted(extenders)))
def test_every_extender_grows_every_zoo_model_and_one_optimizer_reaches_everything(name, ext_name):
    entry = ZOO[name]
    torch.manual_seed(1)
    model = entry.build()
    loader = zoo_data(entry)
    dist = "svod" if ext_name == "swe" else "uniform"
    sizes = as_growable(model, loader[0][0], 0).hidden_sizes
    kwargs = PRESERVING.get(ext_name, ({}, False))[0]
    report = grow(model, 5, loader, extenders[ext_name](**kwargs), distributors[dist](**FAST_DIST.get(dist, {})))
    assert sum(report.allocation.values()) == 5
    assert [b + report.allocation.get(i, 0) for i, b in enumerate(sizes)] == as_growable(model).hidden_sizes
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    covered = {id(p) for g in opt.param_groups for p in g["params"]}
    model.train()
    x, y, _ = loader[0]
    opt.zero_grad()
    nn.functional.cross_entropy(call(model, x), y).backward()
    for pname, p in model.named_parameters():
        assert id(p) in covered and p.grad is not None, pname
    opt.step()


@pytest.mark.parametrize("name", LIGHT_NAMES)
def test_swe_conserves_the_coupled_rows_sums_of_every_zoo_model(name):
    """Plain training (the paper's ``move``): at the first site, for each of its producers (several in
    a residual stream), the column sums of ``[rows | b]`` after adjustment equal those of the old
    rows plus the inserted new ones."""
    entry = ZOO[name]
    torch.manual_seed(2)
    model = entry.build()
    loader = zoo_data(entry)
    inserted: list[torch.Tensor] = []
    real = FactoredCoupling.__init__

    def spy(self, lin, n_old, *a, **kw):
        real(self, lin, n_old, *a, **kw)
        inserted.append(torch.cat([self.weight, lin.bias[:, None]], 1).detach().clone())

    FactoredCoupling.__init__ = spy  # type: ignore[method-assign]
    try:
        grow(model, 3, loader, extenders["swe"](passes=1.0, schedule="sequential"), "fixed", layers=[0])
    finally:
        FactoredCoupling.__init__ = real  # type: ignore[method-assign]
    members = as_growable(model).members(0)
    assert len(inserted) == len(members)
    for r, start in zip(members, inserted):
        after = torch.cat([r.rows(), r.bias[:, None]], 1).detach()
        torch.testing.assert_close(after.sum(0), start.sum(0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("name", "ext_name"), _cases(sorted(extenders)))
def test_a_failed_step_leaves_every_zoo_model_bit_identical(name, ext_name):
    """The extender does all its work, then the step fails: parameters, buffers (none added: no
    cohort buffer, no bias given to a producer without one), shapes and objects are as before."""
    entry = ZOO[name]
    torch.manual_seed(3)
    model = entry.build()
    loader = zoo_data(entry)
    state = {n: v.clone() for n, v in model.state_dict().items()}
    ids = [id(p) for p in model.parameters()]
    ext = extenders[ext_name](**PRESERVING.get(ext_name, ({}, False))[0])
    grow_failing_after_extend(model, 4, loader, ext)
    assert state_equal(state, model.state_dict())
    assert [id(p) for p in model.parameters()] == ids
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            assert mod.in_channels == mod.weight.shape[1] and mod.out_channels == mod.weight.shape[0]
        if isinstance(mod, nn.Linear):
            assert mod.in_features == mod.weight.shape[1] and mod.out_features == mod.weight.shape[0]
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            assert mod.num_features == mod.running_mean.shape[0]


@pytest.mark.parametrize("name", LIGHT_NAMES)
def test_a_grown_zoo_model_pickles_and_resumes_bit_identically(name):
    """What Avalanche's checkpoint does (a pickle of the whole model): shapes, cohorts and every
    tensor come back, and training continues identically from the restored copy."""
    entry = ZOO[name]
    torch.manual_seed(4)
    model = entry.build()
    loader = zoo_data(entry)
    grow(model, 4, loader, "swe", "uniform")
    clone = pickle.loads(pickle.dumps(model))
    a, b = as_growable(model), as_growable(clone)
    assert sites(a).hidden_sizes == sites(b).hidden_sizes
    for i in range(a.num_hidden_layers):
        assert torch.equal(a.cohort(i), b.cohort(i))
    assert state_equal(model.state_dict(), clone.state_dict())
    for m in (model, clone):
        torch.manual_seed(5)
        opt = torch.optim.SGD(m.parameters(), lr=0.05)
        m.train()
        for x, y, _ in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(call(m, x), y).backward()
            opt.step()
    assert state_equal(model.state_dict(), clone.state_dict())


@pytest.mark.parametrize("name", LIGHT_NAMES)
def test_inactivity_is_measured_on_every_zoo_model_without_changing_it(name):
    entry = ZOO[name]
    model = entry.build()
    keys = set(model.state_dict())
    stats = measure_inactivity(model, zoo_data(entry))
    assert len(stats.layers) == entry.sites and all(layer.units > 0 for layer in stats.layers)
    assert set(model.state_dict()) == keys  # measuring adds no buffer


def test_a_wrapped_module_is_the_object_that_grows_and_keeps_its_own_forward():
    entry = ZOO["SimpleMLP"]
    model = entry.build()
    dropout = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    wrapped = as_growable(model, zoo_data(entry)[0][0])
    assert isinstance(wrapped, GrowableModule) and wrapped.module is model
    grow(model, 6, zoo_data(entry), "random", "uniform")
    assert [m for m in model.modules() if isinstance(m, nn.Dropout)] == dropout
    assert sum(as_growable(model).hidden_sizes) == 24 + 6


@pytest.mark.parametrize("name", LIGHT_NAMES)
@pytest.mark.parametrize("method", ["drop", "swe"])
def test_every_zoo_model_prunes_in_place_and_a_refused_prune_changes_nothing(name, method):
    from clgrow.methods.prune import prune

    entry = ZOO[name]
    torch.manual_seed(6)
    model = entry.build()
    loader = zoo_data(entry)
    grown = as_growable(model, loader[0][0], 0)
    sizes = sites(grown).hidden_sizes
    state = {n: v.clone() for n, v in model.state_dict().items()}
    with pytest.raises(GrowthError, match="would keep"):
        prune(model, {0: list(range(sizes[0]))}, method=method, data=loader)
    assert state_equal(state, model.state_dict())
    report = prune(model, {0: [0, 1]}, method=method, data=loader)
    assert report.count == 2 and as_growable(model).hidden_sizes == [sizes[0] - 2, *sizes[1:]]
    model.eval()
    with torch.no_grad():
        assert call(model, loader[0][0]).isfinite().all()


@pytest.mark.parametrize("name", LIGHT_NAMES)
def test_every_zoo_model_resets_units_of_every_site_readers_first(name):
    """A reset unit gets fresh rows in every producer (and fresh norm channels) and zero columns in
    every reader: the model computes what it computed with those columns zeroed, streams included;
    ReDo and continual backprop run on the whole model."""
    from clgrow.methods.plasticity import ContinualBackprop, ReDo, hidden_activations, reset_units

    entry = ZOO[name]
    torch.manual_seed(7)
    model = _no_dropout(entry.build())
    loader = zoo_data(entry)
    grown = as_growable(model, loader[0][0], 0)
    grown.prepare()
    model.eval()
    x = loader[0][0]
    for layer in range(grown.num_hidden_layers):
        units = torch.tensor([0, grown.hidden_sizes[layer] - 1]).unique()
        reference = copy.deepcopy(model)
        with torch.no_grad():
            for c in as_growable(reference).consumers(layer):
                c.view(grown.hidden_sizes[layer])[:, units] = 0.0
            expected = call(reference, x)
        reset_units(model, layer, units)
        with torch.no_grad():
            torch.testing.assert_close(call(model, x), expected, rtol=1e-5, atol=1e-6)
    acts = hidden_activations(model, x, torch.zeros(x.shape[0], dtype=torch.long) if entry.multi_task else None)
    assert [a.shape[1] for a in acts] == grown.hidden_sizes
    ReDo(tau=0.5).at_experience(model, 1, acts)
    ContinualBackprop(replacement_rate=0.5, maturity=0).after_step(model, 1, acts)
    with torch.no_grad():
        assert call(model, x).isfinite().all()
