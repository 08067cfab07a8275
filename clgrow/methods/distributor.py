"""The distributor interface, its registry, and the simple (data-free) distributors."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from torch import nn

from clgrow.data import GrowthContext, LossFn, eligible_layers, model_device
from clgrow.errors import GrowthError
from clgrow.methods import FixedLayerParams, ProportionalParams, UniformParams
from clgrow.params import Configurable
from clgrow.registry import distributors
from clgrow.sites import Growable, growable_from_loader

__all__ = [
    "Distributor",
    "distributors",
    "UniformDistributor",
    "ProportionalDistributor",
    "FixedLayerDistributor",
    "largest_remainder",
]


class Distributor(Configurable):
    """Base class: decides how many of ``k`` new units each eligible hidden layer gets.

    :meth:`allocate` validates the eligible layers, answers ``k = 0`` with zeros, builds the
    step's :class:`GrowthContext` and checks what :meth:`_allocate` returns (only eligible
    layers, non-negative, summing to ``k``); subclasses implement :meth:`_allocate` only.
    """

    name: str = "distributor"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.info: dict[str, Any] = {}

    def allocate(
        self,
        model: nn.Module,
        k: int,
        loader: Iterable[Any] | None = None,
        loss_fn: LossFn | None = None,
        layers: Sequence[int] | None = None,
        new_task: bool = False,
    ) -> dict[int, int]:
        """Return ``{layer: units}`` over the eligible ``layers`` (default: all), summing to ``k``.

        ``new_task``: the growth data is a task the model has not been trained on (a stream's new
        experience); methods may spend a different budget there (``SVoD``). ``model``: any module
        with growth sites (seen through :func:`clgrow.sites.as_growable`)."""
        grown = growable_from_loader(model, loader)
        ls = eligible_layers(grown.num_hidden_layers, layers)
        self.info = {}
        if k == 0:
            return {i: 0 for i in ls}
        ctx = GrowthContext(loader, loss_fn, ls, device=model_device(grown), new_task=bool(new_task))
        return check_allocation(self, self._allocate(grown, k, ctx), k, ls)

    def _allocate(self, model: Growable, k: int, ctx: GrowthContext) -> dict[int, int]:
        """``{layer: units}`` over ``ctx.layers`` summing to ``k > 0``."""
        raise NotImplementedError


def check_allocation(dist: Any, allocation: dict[int, int], k: int, layers: Sequence[int]) -> dict[int, int]:
    """``allocation`` over every eligible layer, or a ``GrowthError`` if it is not a split of ``k``."""
    if set(allocation) - set(layers) or sum(allocation.values()) != k or any(v < 0 for v in allocation.values()):
        raise GrowthError(f"{dist!r} returned an invalid allocation {allocation} for k={k}, layers {list(layers)}")
    return {i: int(allocation.get(i, 0)) for i in layers}


def largest_remainder(k: int, weights: Sequence[float]) -> list[int]:
    """Split ``k`` into integers proportional to ``weights`` (Hamilton's method, ties to the first)."""
    total = float(sum(weights))
    if total <= 0:
        weights, total = [1.0] * len(weights), float(len(weights))
    quotas = [k * w / total for w in weights]
    counts = [int(q) for q in quotas]
    order = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[: k - sum(counts)]:
        counts[i] += 1
    return counts


class UniformDistributor(Distributor):
    """Equal shares; the remainder goes to the earliest layers."""

    Params = UniformParams

    def _allocate(self, model: Growable, k: int, ctx: GrowthContext) -> dict[int, int]:
        """Return ``k`` split evenly over the eligible layers."""
        ls = ctx.layers
        return dict(zip(ls, largest_remainder(k, [1.0] * len(ls))))


class ProportionalDistributor(Distributor):
    """Shares proportional to each layer's current width."""

    Params = ProportionalParams

    def _allocate(self, model: Growable, k: int, ctx: GrowthContext) -> dict[int, int]:
        """Return ``k`` split in proportion to the current widths."""
        ls = ctx.layers
        sizes = model.hidden_sizes
        return dict(zip(ls, largest_remainder(k, [float(sizes[i]) for i in ls])))


class FixedLayerDistributor(Distributor):
    """All units to one chosen layer (``None``: the last eligible, so ``grow(..., "fixed",
    layers=[i])`` grows layer ``i``)."""

    Params = FixedLayerParams
    layer: int | None

    def _allocate(self, model: Growable, k: int, ctx: GrowthContext) -> dict[int, int]:
        """Return ``{layer: k}`` (zeros elsewhere)."""
        n = model.num_hidden_layers
        ls = ctx.layers
        if self.layer is None:
            target = max(ls)
        else:
            target = self.layer + n if self.layer < 0 else self.layer
        if target not in ls:
            raise GrowthError(f"FixedLayerDistributor(layer={self.layer}) names no eligible layer (eligible: {ls})")
        return {i: (k if i == target else 0) for i in ls}
