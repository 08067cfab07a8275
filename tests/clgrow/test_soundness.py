"""A site grows only when everything that can read its units is known: heads the trace did not
take widen with the one it took; a branch it did not take, tied weights, parametrized or
weight-normed layers are refused before anything changes. Bad input to ``grow`` and ``prune``
is a ``GrowthError`` with the model bit-identical, never a traceback from inside torch."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from clgrow import as_growable, grow
from clgrow.errors import GrowthError
from clgrow.methods.prune import prune

X = torch.randn(32, 10, generator=torch.Generator().manual_seed(0))
Y = torch.randint(0, 3, (32,), generator=torch.Generator().manual_seed(1))
DATA = DataLoader(TensorDataset(X, Y), batch_size=16)


def _state(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in m.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Heads(nn.Module):
    """Task heads in a ModuleDict; one forward pass takes one of them."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(10, 16), nn.ReLU())
        self.heads = nn.ModuleDict({"a": nn.Linear(16, 3), "b": nn.Linear(16, 3)})
        self.task = "a"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads[self.task](self.body(x))


class Branch(nn.Module):
    """A layer reading the units on a branch the traced data does not take."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.a, self.b = nn.Linear(10, 16), nn.Linear(16, 3), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.l1(x))
        return self.b(h) if bool(x.abs().max() > 1e6) else self.a(h)


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2, self.l3, self.out = nn.Linear(10, 16), nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 3)
        self.l3.weight = self.l2.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.l3(torch.relu(self.l2(torch.relu(self.l1(x)))))))


def _normed(kind: str) -> nn.Module:
    layer = nn.Linear(10, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "legacy":
            layer = torch.nn.utils.weight_norm(layer)
        else:
            layer = torch.nn.utils.parametrizations.weight_norm(layer)
    return nn.Sequential(layer, nn.ReLU(), nn.Linear(16, 3))


def test_every_head_of_a_module_dict_widens_with_the_one_traced():
    torch.manual_seed(0)
    m = Heads()
    with torch.no_grad():
        before = {t: m.heads[t](m.body(X)) for t in "ab"}
    grow(m, 4, DATA, "random", "proportional")  # new units' outgoing columns zero: function kept
    assert m.body[0].out_features == 20
    for t in "ab":  # both heads read the grown units, and still compute what they did
        m.task = t
        assert m.heads[t].in_features == 20
        with torch.no_grad():
            assert torch.allclose(m(X), before[t], atol=1e-5)


@pytest.mark.parametrize(
    "build,reason",
    [
        (Branch, "was not called in the traced forward pass and may read"),
        (Tied, "is the same tensor as"),
        (lambda: _normed("legacy"), "legacy weight_norm"),
        (lambda: _normed("parametrized"), "parametrized"),
    ],
)
def test_a_site_something_unseen_may_read_is_refused_with_the_model_unchanged(build, reason):
    torch.manual_seed(0)
    m = build()
    before = _state(m)
    with pytest.raises(GrowthError, match=reason):
        grow(m, 4, DATA, "swe", "proportional")
    assert _same(_state(m), before)


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))


@pytest.mark.parametrize(
    "call,message",
    [
        (
            lambda m: grow(m, 4, DataLoader(TensorDataset(torch.randn(32, 7), Y), batch_size=16)),
            "failed on a batch of shape",
        ),
        (lambda m: grow(m, 4, DataLoader(TensorDataset(X.long(), Y), batch_size=16)), "failed on a batch of shape"),
        (lambda m: grow(m, 4, DataLoader(TensorDataset(X[:0], Y[:0]), batch_size=16)), "empty"),
        (lambda m: grow(m, 200_000_000, DATA, "random", "proportional"), "cannot add 200000000 units"),
        (lambda m: grow(m, 4, DataLoader(TensorDataset(X, Y + 7), batch_size=16)), "model was left unchanged"),
        (lambda m: (as_growable(m, X), prune(m, [0, 1])), "units must map each hidden layer"),
        (lambda m: (as_growable(m, X), prune(m, {0: [1]}, method="swe", data=[(torch.randn(8, 7), Y[:8])])), "failed"),
    ],
)
def test_bad_input_is_a_growth_error_and_the_model_is_unchanged(call, message):
    m = _mlp()
    before = _state(m)
    with pytest.raises(GrowthError, match=message):
        call(m)
    assert _same(_state(m), before)
