"""The extender interface and its registry.

An extender inserts the units a distributor allotted and decides their initial weights.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from torch import Tensor, nn

from clgrow.context import GrowthContext, LossFn, model_device
from clgrow.params import Configurable
from clgrow.registry import extenders
from clgrow.sites import Growable, growable_from_loader

__all__ = ["Extender", "extenders", "LossFn", "growth_order", "model_device", "GrowthContext"]


class Extender(Configurable):
    """Base class: adds ``allocation[l]`` units to each hidden layer ``l``.

    :meth:`extend` resets ``info`` and runs :meth:`check` before anything changes, then calls
    :meth:`_extend_all`, which by default runs :meth:`_extend_layer` on each layer from the last
    to the first (so a layer's adjustment sees the already-extended layers above it). Methods
    that treat layers together (SWE's joint schedule) override :meth:`_extend_all`.
    """

    name: str = "extender"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.info: dict[str, Any] = {}

    def extend(
        self,
        model: nn.Module,
        allocation: Mapping[int, int],
        loader: Iterable[Any] | None,
        loss_fn: LossFn | None,
        cohort: int,
        new_task: bool = False,
        rehearsal: bool = False,
    ) -> dict[int, Tensor]:
        """Add the allotted units; return the indices of the new units per layer.

        ``new_task``: the growth data is a task the model has not been trained on, while what it
        learned before must be kept (a continual-learning stream at a new experience);
        ``rehearsal``: the growth data also holds samples of the earlier tasks."""
        self.info = {}
        grown = growable_from_loader(model, loader)
        self.check(grown, allocation)
        ctx = GrowthContext(loader, loss_fn, growth_order(allocation), cohort, model_device(grown), new_task, rehearsal)
        return self._extend_all(grown, allocation, ctx)

    def _extend_all(self, model: Growable, allocation: Mapping[int, int], ctx: GrowthContext) -> dict[int, Tensor]:
        new_units: dict[int, Tensor] = {}
        for layer in ctx.layers:
            new_units[layer] = self._extend_layer(model, layer, int(allocation[layer]), ctx)
        return new_units

    def check(self, model: Growable, allocation: Mapping[int, int]) -> None:
        """Refuse an allocation before anything changes (e.g. a memory guard)."""

    def _extend_layer(self, model: Growable, layer: int, k: int, ctx: GrowthContext) -> Tensor:
        """Add ``k`` units to ``layer`` (cohort ``ctx.cohort``); return their indices."""
        raise NotImplementedError


def growth_order(allocation: Mapping[int, int]) -> list[int]:
    """Layers that receive units, last to first (the order extenders process them in)."""
    return sorted((layer for layer, k in allocation.items() if k > 0), reverse=True)
