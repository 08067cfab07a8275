"""Net2Net-style split (Chen et al., ICLR 2016): new units are noisy copies of old ones."""

from __future__ import annotations

import torch
from torch import Tensor

from clgrow.methods import Net2NetParams
from clgrow.methods.extender import Extender, GrowthContext
from clgrow.sites import Growable

__all__ = ["Net2NetExtender"]


class Net2NetExtender(Extender):
    """Split existing units: copy a unit's incoming row and bias, share its outgoing weight.

    A source unit ``i`` copied ``c_i`` times ends with ``c_i + 1`` units, each carrying
    ``V[:, i] / (c_i + 1)``; without noise the output is unchanged exactly. Gaussian noise of
    standard deviation ``noise * std(W)`` on the copies' incoming rows breaks the symmetry
    between a unit and its copies.

    Parameters
    ----------
    noise : float
        Relative noise on the copied incoming weights (0 keeps copies identical).
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
