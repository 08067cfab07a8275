r"""GradMax (Evci et al., ICLR 2022): new units placed where the gradient norm is largest.

For hidden layer ``l`` with input activations :math:`h \in \mathbb{R}^m` and the gradient
:math:`g \in \mathbb{R}^p` of the loss with respect to the consumer's pre-activations, new
units with zero incoming weights and outgoing columns :math:`V_{new} \in \mathbb{R}^{p \times k}`
would receive the incoming-weight gradient (taking ReLU'(0) = 1)

.. math::  \partial L / \partial W_{new} = V_{new}^\top M, \qquad M = \mathbb{E}[g h^\top] \in \mathbb{R}^{p \times m}.

Its Frobenius norm under :math:`\|V_{new}\|_F` fixed is maximal when the columns of
:math:`V_{new}` are the top-``k`` left singular vectors of ``M``.

ReLU'(0) = 0 in PyTorch, so units with exactly zero incoming weights would never move. The
workaround used here folds the first gradient step into the initialisation: the incoming row
of unit ``j`` is :math:`-\eta\, v_j^\top M` rescaled to norm ``incoming_norm`` (by default the
expected norm of a default-initialised row). ``incoming_norm=0`` gives the literal zero
initialisation (and units that stay dead under plain ReLU).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from clgrow.extender import Extender, GrowthContext
from clgrow.methods import GradMaxParams
from clgrow.model import GrowableMLP

__all__ = ["GradMaxExtender"]


class GradMaxExtender(Extender):
    """GradMax: outgoing weights from the SVD of the gradient product, incoming per the notes above.

    Parameters
    ----------
    passes : float
        Data budget for estimating ``M`` (passes over the growth data).
    out_scale : float
        Norm of every new outgoing column.
    incoming_norm : float, optional
        Norm of the folded first-step incoming rows (``None``: ``1/sqrt(3)``, the expected norm
        of a default ``nn.Linear`` row; 0: zero incoming weights).
    """

    Params = GradMaxParams
    passes: float
    out_scale: float
    incoming_norm: float | None

    def gradient_product(self, model: GrowableMLP, layer: int, ctx: GrowthContext) -> list[Tensor]:
        """``M = E[g h^T]`` per consumer, each of shape ``(p, m)``."""
        device = ctx.device
        loss_fn = ctx.loss("GradMax")
        lin = model.hidden[layer]
        consumers = model.consumers(layer)
        store: dict[str | int, Any] = {}

        def keep_input(_mod: Any, args: tuple[Tensor, ...]) -> None:
            store["h"] = args[0].detach()

        def keep_output(idx: int) -> Any:
            def hook(_mod: Any, _args: Any, out: Tensor) -> None:
                out.retain_grad()
                store[idx] = out

            return hook

        handles = [lin.register_forward_pre_hook(keep_input)]
        handles += [cons.register_forward_hook(keep_output(i)) for i, cons in enumerate(consumers)]
        modes = {mod: mod.training for mod in model.modules()}
        model.eval()
        sums = [torch.zeros(cons.out_features, lin.in_features, device=device) for cons in consumers]
        count = 0
        try:
            for batch in ctx.batches(self.passes, "GradMax"):
                # A task's head sees only its own samples: with several tasks in a batch (replay
                # in a multi-head model) each task's rows go through separately, so every head's
                # output gradient lines up with the layer inputs of the same samples.
                for x, y, t in _by_task(model, *batch):
                    model.zero_grad(set_to_none=True)
                    store.clear()
                    logits, _ = model.run(x, t)
                    loss_fn(logits, y).backward()
                    h = store["h"]
                    for i in range(len(consumers)):
                        out = store.get(i)
                        if out is not None and out.grad is not None:
                            sums[i] += out.grad.T @ h * h.shape[0]
                    count += h.shape[0]
        finally:
            for hd in handles:
                hd.remove()
            model.zero_grad(set_to_none=True)
            for mod, mode in modes.items():
                mod.training = mode
        return [s / max(count, 1) for s in sums]

    def _extend_layer(self, model: GrowableMLP, layer: int, k: int, ctx: GrowthContext) -> Tensor:
        lin = model.hidden[layer]
        m = lin.in_features
        products = self.gradient_product(model, layer, ctx)
        outs, grads = [], torch.zeros(k, m, device=lin.weight.device)
        for M in products:
            U, _, _ = torch.linalg.svd(M, full_matrices=True)
            cols = U[:, : min(k, U.shape[1])]
            if cols.shape[1] < k:  # more new units than directions: fill with random unit vectors
                extra = torch.randn(U.shape[0], k - cols.shape[1], device=U.device)
                cols = torch.cat([cols, extra / extra.norm(dim=0, keepdim=True).clamp_min(1e-12)], 1)
            v = cols * self.out_scale
            outs.append(v)
            grads += v.T @ M
        target = 1.0 / math.sqrt(3.0) if self.incoming_norm is None else float(self.incoming_norm)
        w = -grads / grads.norm(dim=1, keepdim=True).clamp_min(1e-12) * target
        b = torch.zeros(k, device=w.device)
        return model.add_units(layer, w, b, outs, cohort=ctx.cohort)


def _by_task(model: GrowableMLP, x: Tensor, y: Tensor, t: Tensor | None) -> list[tuple[Tensor, Tensor, Tensor | None]]:
    """The batch, split by task label when each task reads its own head (else as it is)."""
    if t is None or not getattr(model, "heads_per_task", False):
        return [(x, y, t)]
    labels = torch.unique(t)
    if labels.numel() == 1:
        return [(x, y, t)]
    return [(x[t == lab], y[t == lab], t[t == lab]) for lab in labels]
