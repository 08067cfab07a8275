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
from torch import Tensor, nn
from torch.nn import functional as F

from clgrow.errors import GrowthError
from clgrow.extender import Extender, GrowthContext
from clgrow.methods import GradMaxParams
from clgrow.model import GrowableMLP

__all__ = ["GradMaxExtender", "channel_product"]


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
        """``M = E[g h^T]`` per consumer, each of shape ``(p, m)``; for a convolutional site
        ``(p·r, m)`` (see :func:`channel_product`)."""
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
        conv: nn.Conv2d | None = lin if isinstance(lin, nn.Conv2d) else None
        kinds = [c.kind for c in model.channel_consumers(layer)] if conv is not None else []
        pool = model.pool(layer)
        sums: list[Tensor | int] = [
            0 if conv is not None else torch.zeros(cons.weight.shape[0], lin.in_features, device=device)
            for cons in consumers
        ]
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
                            if conv is not None:
                                part = channel_product(conv, h, out.grad, consumers[i], kinds[i], pool)
                                sums[i] = sums[i] + part * h.shape[0]
                            else:
                                sums[i] += out.grad.T @ h * h.shape[0]
                    count += h.shape[0]
        finally:
            for hd in handles:
                hd.remove()
            model.zero_grad(set_to_none=True)
            for mod, mode in modes.items():
                mod.training = mode
        m = model.fan_in(layer)
        return [
            (
                s
                if isinstance(s, Tensor)
                else torch.zeros(cons.weight.numel() // model.hidden_sizes[layer], m, device=device)
            )
            / max(count, 1)
            for s, cons in zip(sums, consumers)
        ]

    def _extend_layer(self, model: GrowableMLP, layer: int, k: int, ctx: GrowthContext) -> Tensor:
        lin = model.hidden[layer]
        m = model.fan_in(layer)
        products = self.gradient_product(model, layer, ctx)
        outs, grads = [], torch.zeros(k, m, device=lin.weight.device)
        conv = isinstance(lin, nn.Conv2d)
        for M, cons in zip(products, model.consumers(layer)):
            U, _, _ = torch.linalg.svd(M, full_matrices=True)
            cols = U[:, : min(k, U.shape[1])]
            if cols.shape[1] < k:  # more new units than directions: fill with random unit vectors
                extra = torch.randn(U.shape[0], k - cols.shape[1], device=U.device)
                cols = torch.cat([cols, extra / extra.norm(dim=0, keepdim=True).clamp_min(1e-12)], 1)
            v = cols * self.out_scale
            if conv:  # a channel's outgoing slice is a column of p·r entries: as a unit view (p, k, r)
                p = cons.weight.shape[0]
                outs.append(v.view(p, -1, k).permute(0, 2, 1))
            else:
                outs.append(v)
            grads += v.T @ M
        target = 1.0 / math.sqrt(3.0) if self.incoming_norm is None else float(self.incoming_norm)
        w = -grads / grads.norm(dim=1, keepdim=True).clamp_min(1e-12) * target
        b = torch.zeros(k, device=w.device)
        return model.add_units(layer, w, b, outs, cohort=ctx.cohort)


def channel_product(
    conv: nn.Conv2d, x: Tensor, grad: Tensor, consumer: nn.Module, kind: str, pool: nn.Module | None, chunk: int = 8
) -> Tensor:
    r"""GradMax's ``Σ g hᵀ`` for new channels of ``conv``, summed over a batch: ``(p·r, m)``.

    A new channel with filter ``w`` (``m = c_in·kh·kw`` entries, zero at insertion; batch norm
    and ReLU taken as the identity there, as for units) outputs the map ``a = w · P`` where
    ``P`` ``(m, H, W)`` are the input patches (``unfold``), pooled as the site pools its output
    (a max-pool of an all-zero map has no argmax: its window is averaged). Its consumer reads
    ``a`` through a slice ``V`` of ``p·r`` entries, so ``∂L/∂w = vec(V)ᵀ M`` with
    ``M[(o, j), :] = Σ_{b, y} g[b, o, y] · Q_j[b, :, y]``: ``g`` the consumer's output gradient,
    ``Q_j`` the pooled patches seen at the consumer's tap ``j`` (its own ``unfold``) for a
    convolution, at position ``j`` for a ``Linear`` after ``Flatten``, and averaged over
    positions (``r = 1``) after global pooling. The top left singular vectors of ``M`` are then
    the outgoing slices, as for units.

    Parameters
    ----------
    conv : nn.Conv2d
        The site's producer; ``x`` ``(B, c_in, H_in, W_in)`` its input.
    grad : Tensor
        The consumer's output gradient: ``(B, p, H', W')`` for a convolution, ``(B, p)`` otherwise.
    consumer : nn.Conv2d or nn.Linear
    kind : {"conv", "flatten", "pool"}
    pool : nn.Module, optional
        The pooling between the site's ReLU and its consumer.
    chunk : int
        Samples per chunk (a convolution's ``Q`` holds ``m·r·H'·W'`` entries per sample).
    """
    out: Tensor | int = 0
    h_out = F.conv2d(x[:1], conv.weight[:1], None, conv.stride, conv.padding, conv.dilation).shape[2]
    for s in range(0, x.shape[0], chunk):
        xb, gb = x[s : s + chunk], grad[s : s + chunk]
        patches = F.unfold(xb, conv.kernel_size, conv.dilation, _numbers(conv.padding), conv.stride)  # (b, m, L)
        q = patches.view(xb.shape[0], patches.shape[1], h_out, -1)
        if isinstance(pool, nn.MaxPool2d):
            q = F.avg_pool2d(q, pool.kernel_size, pool.stride, pool.padding)
        elif pool is not None and not isinstance(pool, nn.Identity):
            q = pool(q)
        m = q.shape[1]
        if kind == "conv":
            assert isinstance(consumer, nn.Conv2d)
            u = F.unfold(q, consumer.kernel_size, consumer.dilation, _numbers(consumer.padding), consumer.stride)
            u = u.view(q.shape[0], m, -1, u.shape[-1])  # (b, m, r, Y)
            part = torch.einsum("bpy,bmry->prm", gb.flatten(2), u).reshape(-1, m)
        elif kind == "flatten":
            part = torch.einsum("bp,bmq->pqm", gb, q.flatten(2)).reshape(-1, m)
        else:
            part = gb.T @ q.mean(dim=(2, 3))
        out = out + part
    assert isinstance(out, Tensor)
    return out


def _numbers(padding: str | tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(padding, str):  # refused where models are built (GrowableCNN.from_sequential)
        raise GrowthError(f"GradMax needs a convolution's padding as numbers, got {padding!r}")
    return padding


def _by_task(model: GrowableMLP, x: Tensor, y: Tensor, t: Tensor | None) -> list[tuple[Tensor, Tensor, Tensor | None]]:
    """The batch, split by task label when each task reads its own head (else as it is)."""
    if t is None or not getattr(model, "heads_per_task", False):
        return [(x, y, t)]
    labels = torch.unique(t)
    if labels.numel() == 1:
        return [(x, y, t)]
    return [(x[t == lab], y[t == lab], t[t == lab]) for lab in labels]
