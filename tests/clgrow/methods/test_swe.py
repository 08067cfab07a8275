"""SWE: column-sum conservation, baking, frozen weights, memory guard, NaN rollback, for every
coupling (dense, factored per column or per pair) and schedule (sequential, joint)."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import clgrow.methods.swe as swe_module
from clgrow import SWE, GrowthError, coupled_weights, grow, mlp
from clgrow.methods.coupling import FactoredCoupling
from tests.helpers import producer, sites, state_equal

# Every variant the extender offers; each test below runs on all of them.
VARIANTS = {
    "default": {},
    "paper": dict(SWE.PAPER),
    "dense-joint": dict(coupling="dense", schedule="joint"),
    "factored-sequential": dict(coupling="factored", schedule="sequential"),
    "factored-pair": dict(coupling="factored", normalise="pair"),
    "factored-column-unclipped": dict(coupling="factored", normalise="column", clip=None),
    "factored-no-trust": dict(coupling="factored", trust=None),
    "factored-fixed-trust": dict(coupling="factored", trust_snr=None),
}
variants = pytest.mark.parametrize("variant", list(VARIANTS))


def _swe(variant: str, **kwargs) -> SWE:
    return SWE(**{**VARIANTS[variant], **kwargs})


def _wb(model: nn.Module, layer: int) -> torch.Tensor:
    lin = producer(model, layer)
    return torch.cat([lin.weight, lin.bias[:, None]], 1).detach().clone()


def _random_layer(n: int, k: int, m: int, seed: int, subset: bool):
    """A layer of ``n`` old and ``k`` new random rows, its partners (half the old rows with
    ``subset``), ``[W | b]`` before any step, and the generator for the gradients."""
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(m, n + k)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(n + k, m, generator=g))
        lin.bias.copy_(torch.randn(n + k, generator=g))
    s = max(1, n // 2) if subset else n
    partners = torch.randperm(n, generator=g)[:s].sort().values
    return lin, partners, torch.cat([lin.weight, lin.bias[:, None]], 1).detach().clone(), g


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 9),
    k=st.integers(1, 6),
    m=st.integers(1, 9),
    seed=st.integers(0, 2**16),
    subset=st.booleans(),
    normalise=st.sampled_from(["column", "pair"]),
    clip=st.sampled_from([None, 0.5]),
    steps=st.integers(1, 4),
    trust=st.sampled_from([None, 1e-3, 0.05]),
    trust_snr=st.sampled_from([None, 0.5]),
)
def test_factored_coupling_conserves_column_sums(n, k, m, seed, subset, normalise, clip, steps, trust, trust_snr):
    """Each step is a set of pair transfers: column sums of [W | b] never change, old units
    that are not partners are never touched, and with a trust region no step moves the old
    partners by more than ``trust`` times their norm, widened by ``(trust_snr / ρ)²`` at most,
    with ρ the gradient's signal-to-noise ratio from Adam's moments (recomputed here)."""
    lin, partners, before, g = _random_layer(n, k, m, seed, subset)
    s = partners.numel()
    cp = FactoredCoupling(lin, n, partners, lr=0.1, normalise=normalise, clip=clip, trust=trust, trust_snr=trust_snr)
    mean = power = torch.zeros(s, m + 1)
    for t in range(1, steps + 1):
        lin.weight.grad = torch.randn(n + k, m, generator=g)
        lin.bias.grad = torch.randn(n + k, generator=g)
        grad = torch.cat([lin.weight.grad, lin.bias.grad[:, None]], 1)[:n][partners]
        mean, power = 0.9 * mean + 0.1 * grad, 0.999 * power + 0.001 * grad**2
        snr = min(1.0, float((mean / (1 - 0.9**t)).square().sum() / (power / (1 - 0.999**t)).sum()))
        widen = 1.0 if trust_snr is None else max(1.0, (trust_snr / snr) ** 2)
        old = torch.cat([lin.weight, lin.bias[:, None]], 1)[:n][partners].detach().clone()
        cp.step()
        moved = (torch.cat([lin.weight, lin.bias[:, None]], 1)[:n][partners] - old).norm()
        if trust is not None:
            assert moved <= trust * widen * old.norm() * (1 + 1e-4) + 1e-6
    after = torch.cat([lin.weight, lin.bias[:, None]], 1).detach()
    torch.testing.assert_close(after.sum(0), before.sum(0), rtol=1e-5, atol=1e-4)
    if clip is None:  # a clip can saturate both ends of a pair alike, which cancels the transfer
        assert not torch.equal(after[n:], before[n:])
    others = torch.ones(n, dtype=torch.bool)
    others[partners] = False
    assert torch.equal(after[:n][others], before[:n][others])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 9), k=st.integers(1, 6), m=st.integers(1, 9), seed=st.integers(0, 2**16), subset=st.booleans())
def test_coupling_conserves_column_sums(n, k, m, seed, subset):
    g = torch.Generator().manual_seed(seed)
    weight, bias = torch.randn(n + k, m, generator=g), torch.randn(n + k, generator=g)
    s = max(1, n // 2) if subset else n
    partners = torch.randperm(n, generator=g)[:s]
    C, c = torch.randn(k, s, m, generator=g), torch.randn(k, s, generator=g)
    w, b = coupled_weights(weight, bias, n, partners, C, c)
    torch.testing.assert_close(w.sum(0), weight.sum(0), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(b.sum(), bias.sum(), rtol=1e-5, atol=1e-4)
    # old units that are not partners keep their weights exactly
    others = torch.ones(n, dtype=torch.bool)
    others[partners] = False
    assert torch.equal(w[:n][others], weight[:n][others])


def _record_new_rows(monkeypatch) -> list[torch.Tensor]:
    rows: list[torch.Tensor] = []
    real = swe_module.default_init

    def spy(k, m):
        w, b = real(k, m)
        rows.append(torch.cat([w, b[:, None]], 1).clone())
        return w, b

    monkeypatch.setattr(swe_module, "default_init", spy)
    return rows


@variants
def test_swe_moves_only_coupling_and_consumer(variant, trained_mlp, digits_loader, monkeypatch):
    """After SWE on layer 1: column sums of [W|b] of layer 1 are those of old rows + r; every
    other parameter except the consumer's weight is bit-identical."""
    torch.manual_seed(1)
    rows = _record_new_rows(monkeypatch)
    model = trained_mlp
    old = {k: v.clone() for k, v in model.state_dict().items()}
    # weight decay on the *training* optimizer must be irrelevant: SWE builds its own
    report = grow(model, 5, digits_loader, _swe(variant, passes=1.0), "fixed", layers=[1])
    assert report.allocation == {1: 5}
    new = model.state_dict()
    wb_before = torch.cat([old["3.weight"], old["3.bias"][:, None]], 1)
    wb_after = torch.cat([new["3.weight"], new["3.bias"][:, None]], 1)
    expected = wb_before.sum(0) + rows[0].sum(0)
    torch.testing.assert_close(wb_after.sum(0), expected, rtol=1e-5, atol=1e-5)
    # the coupling did move weight from old units to new ones
    assert not torch.allclose(wb_after[:16], wb_before, atol=1e-7)
    for name in ["1.weight", "1.bias", "7.weight", "7.bias", "5.bias"]:
        assert torch.equal(new[name], old[name]), name
    # the consumer (hidden.2) trained: old columns moved, new columns left zero
    assert new["5.weight"].shape == (16, 21)
    assert not torch.equal(new["5.weight"][:, :16], old["5.weight"])
    assert new["5.weight"][:, 16:].abs().sum() > 0


@variants
def test_baked_model_is_a_plain_mlp(variant, trained_mlp, digits_loader):
    names_before = [n for n, _ in trained_mlp.named_parameters()]
    grow(trained_mlp, 6, digits_loader, _swe(variant, passes=0.5), "uniform")
    assert type(trained_mlp) is nn.Sequential
    assert [n for n, _ in trained_mlp.named_parameters()] == names_before
    assert sites(trained_mlp).hidden_sizes == [18, 18, 18]
    fresh = mlp(64, [18, 18, 18], 10)
    grown = trained_mlp.state_dict()
    # growth adds its cohort buffers and nothing else: the weights load into the plain model
    assert {k for k in grown if "clgrow_" not in k} == set(fresh.state_dict())
    fresh.load_state_dict({k: v for k, v in grown.items() if "clgrow_" not in k})


@variants
def test_frozen_flags_and_training_mode_are_restored(variant, trained_mlp, digits_loader):
    producer(trained_mlp, 0).weight.requires_grad_(False)
    trained_mlp.train()
    grow(trained_mlp, 3, digits_loader, _swe(variant, passes=0.25), "uniform")
    assert trained_mlp.training
    assert not producer(trained_mlp, 0).weight.requires_grad
    assert all(p.requires_grad for n, p in trained_mlp.named_parameters() if n != "1.weight")
    assert all(p.grad is None for p in trained_mlp.parameters())


def test_memory_guard_refuses_before_any_change(trained_mlp, digits_loader):
    state = {k: v.clone() for k, v in trained_mlp.state_dict().items()}
    with pytest.raises(GrowthError, match="max_coupling_bytes"):
        grow(trained_mlp, 8, digits_loader, SWE(coupling="dense", max_coupling_bytes=1000), "uniform")
    assert state_equal(state, trained_mlp.state_dict())


def test_memory_guard_can_subsample_partners(trained_mlp, digits_loader):
    ext = SWE(coupling="dense", passes=0.25, max_coupling_bytes=16 * 4 * 64 * 5, on_oversize="subsample")
    report = grow(trained_mlp, 4, digits_loader, ext, "fixed", layers=[0])
    assert report.info["extender"]["layer0"]["partners"] == 5


@variants
def test_nan_loss_during_adjustment_rolls_back(variant, trained_mlp, digits_loader):
    state = {k: v.clone() for k, v in trained_mlp.state_dict().items()}
    ids = [id(p) for p in trained_mlp.parameters()]
    calls = {"n": 0}

    def loss_fn(logits, y):
        calls["n"] += 1
        loss = nn.functional.cross_entropy(logits, y)
        return loss * float("nan") if calls["n"] > 3 else loss

    with pytest.raises(GrowthError, match="loss became nan"):
        grow(trained_mlp, 6, digits_loader, _swe(variant, passes=1.0), "uniform", loss_fn=loss_fn)
    assert state_equal(state, trained_mlp.state_dict())
    assert [id(p) for p in trained_mlp.parameters()] == ids
    assert sites(trained_mlp).hidden_sizes == [16, 16, 16]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(passes=-1),
        dict(lr=0),
        dict(partners=0),
        dict(on_oversize="x"),
        dict(coupling_lr=0),
        dict(coupling="x"),
        dict(schedule="x"),
        dict(normalise="x"),
        dict(clip=0),
        dict(lr=float("nan")),
        dict(coupling_lr=float("inf")),
        dict(trust=0),
        dict(trust=float("nan")),
        dict(trust_snr=0),
        dict(trust_snr=1.5),
        dict(trust_snr=float("nan")),
        dict(old_rows="x"),
        dict(consumers="x"),
        dict(new_norm=0),
        dict(max_coupling_bytes=-1),
        dict(max_coupling_bytes=1.5),
        dict(new_norm=float("inf")),
    ],
)
def test_swe_arguments_are_validated(kwargs):
    with pytest.raises(GrowthError):
        SWE(**kwargs)


@variants
def test_coupling_lr_limits_how_far_old_units_move(variant, trained_mlp, digits_loader):
    import copy

    def moved(ext):
        model = copy.deepcopy(trained_mlp)
        before = producer(model, 1).weight.detach().clone()
        torch.manual_seed(0)
        grow(model, 5, digits_loader, ext, "fixed", layers=[1])
        return (producer(model, 1).weight[:16] - before).abs().sum().item()

    # init_std=0: the dense coupling's random start would move old rows by a fixed amount whatever
    # the step size; what is measured here is the learned part only
    fast = moved(_swe(variant, passes=0.5, init_std=0.0))
    slow = moved(_swe(variant, passes=0.5, coupling_lr=1e-6, init_std=0.0))
    assert 0 < slow < fast / 50


def test_joint_schedule_conserves_column_sums_of_a_coupled_consumer(trained_mlp, digits_loader, monkeypatch):
    """Layers 1 and 2 grow together: layer 2's rows are coupled and it also consumes layer 1's new
    units. Its old input columns keep their sums (old rows + new default rows); only the columns
    of layer 1's new units are trained directly."""
    rows = _record_new_rows(monkeypatch)
    model = trained_mlp
    before = {i: _wb(model, i) for i in (1, 2)}
    torch.manual_seed(0)
    report = grow(model, 8, digits_loader, SWE(passes=1.0), "uniform", layers=[1, 2])
    assert report.allocation == {1: 4, 2: 4}
    new_rows = {2: rows[0], 1: rows[1]}  # inserted last layer first
    after1 = _wb(model, 1)
    torch.testing.assert_close(after1.sum(0), before[1].sum(0) + new_rows[1].sum(0), rtol=1e-5, atol=1e-5)
    after2 = _wb(model, 2)  # columns: 16 old inputs, 4 new inputs, then the bias
    old_cols = list(range(16)) + [20]
    expected = before[2].sum(0) + new_rows[2][:, [*range(16), 16]].sum(0)
    torch.testing.assert_close(after2[:, old_cols].sum(0), expected, rtol=1e-5, atol=1e-5)
    assert after2[:, 16:20].abs().sum() > 0  # the new columns trained
    assert not torch.equal(after1[:16], before[1])  # the coupling moved old units


@pytest.mark.parametrize("variant", ["default", "factored-pair"])
def test_factored_coupling_grows_a_layer_the_dense_guard_refuses(variant):
    """K = 256 into a 1024-wide layer on 784 inputs: the dense coupling needs 3.1 GiB and is
    refused; the factored ones grow under the same guard, reporting state within its bound."""
    torch.manual_seed(0)
    model = mlp(784, [1024], 10)
    x, y = torch.rand(64, 784), torch.randint(0, 10, (64,))
    loader = [(x, y)]
    guard = 2 * 1024**3
    with pytest.raises(GrowthError, match="max_coupling_bytes"):
        grow(model, 256, loader, SWE(coupling="dense", max_coupling_bytes=guard), "fixed")
    assert sites(model).hidden_sizes == [1024]
    report = grow(model, 256, loader, _swe(variant, max_coupling_bytes=guard), "fixed")
    assert sites(model).hidden_sizes == [1280]
    mib = report.info["extender"]["layer0"]["coupling_mib"]
    assert 0 < mib * 2**20 <= 64 * 2**20 + 4 * 4 * (1024 + 256) * 785


def test_trust_region_reports_the_steps_it_cut(trained_mlp, digits_loader):
    """A tight trust region cuts every step of the adjustment, none cuts none, and the report says so."""
    import copy

    tight = grow(copy.deepcopy(trained_mlp), 6, digits_loader, SWE(trust=1e-6), "uniform")
    loose = grow(copy.deepcopy(trained_mlp), 6, digits_loader, SWE(trust=None), "uniform")
    for layer, info in tight.info["extender"].items():
        assert info["trust_scaled_steps"] == info["steps"] > 0, layer
    assert all(info["trust_scaled_steps"] == 0 for info in loose.info["extender"].values())


def _trust_steps(grads: list[torch.Tensor], trust_snr: float | None) -> list[float]:
    """Relative move of the old rows at each step of a ``FactoredCoupling(trust=1e-3)`` fed
    ``grads`` (each ``(n + k, m + 1)``, old rows first)."""
    torch.manual_seed(0)
    n, k = 6, 3
    lin = nn.Linear(grads[0].shape[1] - 1, n + k)
    cp = FactoredCoupling(lin, n, torch.arange(n), lr=0.1, clip=0.5, trust=1e-3, trust_snr=trust_snr)
    moves = []
    for grad in grads:
        lin.weight.grad, lin.bias.grad = grad[:, :-1].clone(), grad[:, -1].clone()
        old = torch.cat([lin.weight, lin.bias[:, None]], 1)[:n].detach().clone()
        cp.step()
        new = torch.cat([lin.weight, lin.bias[:, None]], 1)[:n].detach()
        moves.append(float((new - old).norm() / old.norm()))
    return moves


def test_trust_region_widens_only_for_a_noisy_gradient():
    """A gradient that keeps its direction (SNR 1) is held to ``trust`` whatever ``trust_snr``;
    one whose sign flips every step (SNR falls towards 0.05) lets the widened region move the
    old units several times further than the fixed one."""
    g = torch.Generator().manual_seed(1)
    base = torch.randn(9, 5, generator=g)
    same = [base] * 20
    assert _trust_steps(same, 0.5) == pytest.approx(_trust_steps(same, None), rel=1e-5)
    assert max(_trust_steps(same, 0.5)) <= 1e-3 * (1 + 1e-4)
    flipping = [base * (-1) ** t * (1 + 0.1 * torch.randn(9, 5, generator=g)) for t in range(20)]
    fixed, widened = _trust_steps(flipping, None), _trust_steps(flipping, 0.5)
    assert max(fixed) <= 1e-3 * (1 + 1e-4)
    assert widened[0] == pytest.approx(fixed[0], rel=1e-5)  # one gradient is all signal
    assert sum(widened[10:]) > 3 * sum(fixed[10:])


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 9),
    k=st.integers(1, 6),
    m=st.integers(1, 9),
    seed=st.integers(0, 2**16),
    subset=st.booleans(),
    normalise=st.sampled_from(["column", "pair"]),
    steps=st.integers(1, 4),
    trust=st.sampled_from([None, 0.05]),
    old_rows=st.sampled_from(["keep", "restore"]),
)
def test_kept_or_restored_old_rows_end_bit_identical(n, k, m, seed, subset, normalise, steps, trust, old_rows):
    """``keep`` never moves an old row; ``restore`` moves them while coupled and puts them back at
    bake-in; the new rows receive the transfers either way."""
    lin, partners, before, g = _random_layer(n, k, m, seed, subset)
    cp = FactoredCoupling(lin, n, partners, lr=0.1, normalise=normalise, clip=None, trust=trust, old_rows=old_rows)
    for _ in range(steps):
        lin.weight.grad = torch.randn(n + k, m, generator=g)
        lin.bias.grad = torch.randn(n + k, generator=g)
        cp.step()
        if old_rows == "keep":
            assert torch.equal(torch.cat([lin.weight, lin.bias[:, None]], 1)[:n], before[:n])
    cp.bake()
    after = torch.cat([lin.weight, lin.bias[:, None]], 1).detach()
    assert torch.equal(after[:n], before[:n])
    assert not torch.equal(after[n:], before[n:])


@pytest.mark.parametrize("old_rows", ["keep", "restore"])
def test_dense_coupling_keeps_or_restores_old_rows(trained_mlp, digits_loader, old_rows):
    old = [_wb(trained_mlp, i) for i in range(3)]
    grow(trained_mlp, 6, digits_loader, SWE(coupling="dense", old_rows=old_rows, consumers="all"), "uniform")
    for i in range(3):
        n = old[i].shape[0]
        new = _wb(trained_mlp, i)
        assert torch.equal(new[:n, : old[i].shape[1] - 1], old[i][:, :-1]) and torch.equal(new[:n, -1], old[i][:, -1])


def test_auto_settings_depend_on_whether_the_growth_sees_a_new_task():
    assert SWE().settings_for(new_task=False) == ("move", "all")
    assert SWE().settings_for(new_task=True) == ("restore", "protect")
    assert SWE().settings_for(new_task=True, rehearsal=True) == ("restore", "protect")
    assert SWE(rehearsal_consumers="all").settings_for(new_task=True, rehearsal=True) == ("restore", "all")
    assert SWE(rehearsal_consumers="all").settings_for(new_task=True) == ("restore", "protect")
    assert SWE().settings_for(new_task=False, rehearsal=True) == ("move", "all")
    assert SWE(old_rows="keep").settings_for(new_task=False) == ("keep", "all")
    assert SWE(**SWE.PAPER).settings_for(new_task=True) == ("move", "all")  # the paper's procedure, always


def test_budget_default_depends_on_the_setting():
    """passes=None: 0.5 in plain training, 0.15 at a stream's new experience; a number applies to both."""
    assert (SWE().passes_for(False), SWE().passes_for(True)) == (0.5, 0.15)
    assert (SWE(passes=0.3).passes_for(False), SWE(passes=0.3).passes_for(True)) == (0.3, 0.3)
    assert SWE(**SWE.PAPER).passes_for(True) == 1.0


def _layer_columns(model: nn.Module, sizes: list[int]) -> list[torch.Tensor]:
    """Each consumer's weight: hidden[1], hidden[2], head (after growth)."""
    return [producer(model, 1).weight.detach(), producer(model, 2).weight.detach(), model[-1].weight.detach()]


@pytest.mark.parametrize("consumers", ["isolated", "protect", "scaffold"])
def test_consumer_modes_leave_what_old_units_read_untouched(trained_mlp, digits_loader, consumers):
    """Old units of a hidden consumer never read a new unit (their new columns stay zero), old
    columns never train; a single head's new columns are put back with ``protect`` and
    ``scaffold`` and train with ``isolated``; ``scaffold`` also puts back the hidden blocks."""
    before = [c.clone() for c in _layer_columns(trained_mlp, sites(trained_mlp).hidden_sizes)]
    n_old = sites(trained_mlp).hidden_sizes
    report = grow(
        trained_mlp,
        12,
        digits_loader,
        SWE(old_rows="restore", consumers=consumers, passes=1.0),
        "uniform",
        new_task=True,
    )
    assert all(v == 4 for v in report.allocation.values())
    after = _layer_columns(trained_mlp, sites(trained_mlp).hidden_sizes)
    for j, (b, a) in enumerate(zip(before, after)):
        rows_old = b.shape[0] if j == 2 else n_old[j + 1]
        cols_old = n_old[j]
        assert torch.equal(a[:rows_old, :cols_old], b[:rows_old, :cols_old])  # old rows' old columns
        if j < 2:
            assert torch.equal(a[:rows_old, cols_old:], torch.zeros_like(a[:rows_old, cols_old:]))
            block = a[rows_old:, cols_old:]
            assert bool(block.eq(0).all()) == (consumers == "scaffold")
        else:
            assert bool(a[:, cols_old:].eq(0).all()) == (consumers != "isolated")
    # with restored old rows nothing old changed: the outputs are the old outputs exactly
    x = next(iter(digits_loader))[0]
    if consumers != "isolated":
        snap = copy.deepcopy(trained_mlp)
        for i in range(3):  # zero the new units' rows: the model is then the old one with dead extras
            with torch.no_grad():
                producer(snap, i).weight[n_old[i] :] = 0
                producer(snap, i).bias[n_old[i] :] = -1
        torch.testing.assert_close(trained_mlp(x), snap(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("old_rows", ["restore", "keep"])
def test_new_rows_are_bounded_by_the_old_rows_mean_norm(trained_mlp, digits_loader, old_rows):
    sizes = sites(trained_mlp).hidden_sizes
    grow(
        trained_mlp,
        12,
        digits_loader,
        SWE(old_rows=old_rows, consumers="protect", passes=2.0, trust=None, new_norm=0.5),
        "uniform",
        new_task=True,
    )
    for i, n in enumerate(sizes):
        wb = _wb(trained_mlp, i)
        norms = wb.norm(dim=1)
        assert bool((norms[n:] <= 0.5 * norms[:n].mean() * (1 + 1e-5)).all())
