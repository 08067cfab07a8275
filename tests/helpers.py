"""Small helpers shared by the tests."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader


def train(model: nn.Module, loader: DataLoader, epochs: int = 1, lr: float = 1e-2) -> None:
    """Plain Adam training used to get non-trivial weights."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()


def state_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Bit-for-bit equality of two state dicts (same keys, shapes and values)."""
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)


def grow_failing_after_extend(model: nn.Module, k: int, loader: DataLoader, ext: object) -> None:
    """Grow ``model`` by ``k`` units with ``ext``, failing right after the extender did all its
    work (every insertion, adjustment and norm copy): ``grow`` must raise a ``GrowthError`` naming
    the failure (and put the model back; the caller checks that)."""
    import pytest

    from clgrow import GrowthError, grow

    cls = type(ext)
    real = cls.extend  # type: ignore[attr-defined]

    def extend_then_fail(self: object, *a: object, **kw: object) -> None:
        real(self, *a, **kw)
        raise RuntimeError("disk went away")

    cls.extend = extend_then_fail  # type: ignore[attr-defined]
    try:
        with pytest.raises(GrowthError, match="disk went away"):
            grow(model, k, loader, ext, "uniform")
    finally:
        cls.extend = real  # type: ignore[attr-defined]


def sites(model: nn.Module):
    """``model`` through clgrow's site view (its last trace; clgrow's builders trace theirs)."""
    from clgrow.sites import as_growable

    return as_growable(model)


def producer(model: nn.Module, layer: int) -> nn.Module:
    """The (first) producer of site ``layer``: a hidden ``Linear`` or convolution."""
    return sites(model).members(layer)[0].producer


def rows(model: nn.Module, layer: int) -> torch.Tensor:
    """Site ``layer``'s (first) producer's weight as rows ``(n, m)`` (a view)."""
    return sites(model).members(layer)[0].rows()


def norm(model: nn.Module, layer: int) -> nn.Module | None:
    """The batch norm right after site ``layer``'s (first) producer, if any."""
    return sites(model).members(layer)[0].norm


def fan_in(model: nn.Module, layer: int) -> int:
    """Entries of one unit's row at site ``layer``."""
    return sites(model).members(layer)[0].fan_in


def task_mlp(in_features: int, hidden: list[int], classes: int) -> nn.Module:
    """clgrow's MLP trunk with one head per task (Avalanche's MultiHeadClassifier)."""
    from clgrow.models import mlp
    from clgrow.strategies.multihead import with_task_heads

    return with_task_heads(mlp(in_features, hidden, None), classes, torch.zeros(2, in_features))
