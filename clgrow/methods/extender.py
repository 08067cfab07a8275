"""The extender interface and its registry, and the two simplest extenders.

An extender inserts the units a distributor allotted and decides their initial weights.
:class:`RandomExtender` is plain function-preserving growth (default-initialised incoming
weights, zero outgoing); :class:`Net2NetExtender` a Net2Net-style split (Chen et al., ICLR 2016):
new units are noisy copies of old ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from clgrow.data import GrowthContext, LossFn, model_device
from clgrow.methods import Net2NetParams, RandomParams
from clgrow.params import Configurable
from clgrow.registry import extenders
from clgrow.sites import Growable, growable_from_loader
from clgrow.surgery import default_init

__all__ = ["Extender", "RandomExtender", "Net2NetExtender", "extenders", "growth_order"]


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


class RandomExtender(Extender):
    """New units get ``nn.Linear``'s default init for ``W``/``b`` and zero columns in ``V``.

    The network's output is unchanged exactly; whether the new units ever fire is left
    to training (the baseline that SWE is compared against).
    """

    Params = RandomParams

    def _extend_layer(self, model: Growable, layer: int, k: int, ctx: GrowthContext) -> Tensor:
        inits = [default_init(k, r.fan_in) for r in model.members(layer)]  # a filter's init has the same law
        return model.add_units(layer, [w for w, _ in inits], [b for _, b in inits], None, cohort=ctx.cohort)


class Net2NetExtender(Extender):
    """Split existing units: copy a unit's incoming row and bias, share its outgoing weight.

    A source unit ``i`` copied ``c_i`` times ends with ``c_i + 1`` units, each carrying
    ``V[:, i] / (c_i + 1)``; without noise the output is unchanged exactly. Gaussian noise of
    standard deviation ``noise * std(W)`` on the copies' incoming rows breaks the symmetry
    between a unit and its copies.
    """

    Params = Net2NetParams
    noise: float

    def _extend_layer(self, model: Growable, layer: int, k: int, ctx: GrowthContext) -> Tensor:
        n = model.hidden_sizes[layer]
        device = model.members(layer)[0].weight.device
        with torch.no_grad():
            src = (torch.randperm(n)[:k] if k <= n else torch.randint(0, n, (k,))).to(device)
            ws, bs = [], []
            for r in model.members(layer):
                copies = torch.bincount(src, minlength=n).to(r.weight.dtype)
                rows = r.rows()
                w = rows[src].clone()
                spread = rows.std().nan_to_num(0.0) if rows.numel() > 1 else rows.new_zeros(())
                w += torch.randn_like(w) * self.noise * spread
                ws.append(w)
                bs.append(r.bias[src].clone())
            share = 1.0 / (copies + 1.0)  # (n,)
            outs = []
            for c in model.consumers(layer):
                v = c.view(n)  # (p, n, r): a channel's kernel or flattened block splits whole
                v.mul_(share[None, :, None])  # the old columns keep their share
                outs.append(v[:, src].clone())
        new = model.add_units(layer, ws, bs, outs, cohort=ctx.cohort)
        with torch.no_grad():  # a copied channel normalises as its source does, or the split is not exact
            for norm in model.norms(layer):
                for name in ("weight", "bias", "running_mean", "running_var"):
                    t = getattr(norm, name, None)
                    if t is not None:
                        t[new] = t[src]
        return new
