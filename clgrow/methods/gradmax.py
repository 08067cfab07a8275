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

from clgrow.data import GrowthContext
from clgrow.errors import GrowthError
from clgrow.methods import GradMaxParams
from clgrow.methods.extender import Extender
from clgrow.sites import Growable, as_growable

__all__ = ["GradMaxExtender", "channel_product"]


class GradMaxExtender(Extender):
    """GradMax: outgoing weights from the SVD of the gradient product, incoming per the notes above."""

    Params = GradMaxParams
    passes: float
    out_scale: float
    incoming_norm: float | None

    def gradient_product(self, model: nn.Module | Growable, layer: int, ctx: GrowthContext) -> list[list[Tensor]]:
        """``M = E[g h^T]`` per reader and producer: ``[reader][producer]`` of shape ``(p, m)``;
        ``(p·r, m)`` for a convolution (see :func:`channel_product`)."""
        model = as_growable(model)  # type: ignore[arg-type]  # a site view is itself
        device = ctx.device
        loss_fn = ctx.loss("GradMax")
        rows = model.members(layer)
        readers = model.consumers(layer)
        store: dict[Any, Any] = {}

        def keep_input(j: int) -> Any:
            def hook(_mod: Any, args: tuple[Tensor, ...]) -> None:
                store[("h", j)] = args[0].detach()

            return hook

        def keep_output(idx: int) -> Any:
            def hook(_mod: Any, args: tuple[Tensor, ...], out: Tensor) -> None:
                out.retain_grad()
                store[idx] = out
                store[("in", idx)] = args[0].shape

            return hook

        handles = [r.producer.register_forward_pre_hook(keep_input(j)) for j, r in enumerate(rows)]
        handles += [c.module.register_forward_hook(keep_output(i)) for i, c in enumerate(readers)]
        modes = {mod: mod.training for mod in model.modules()}
        model.eval()
        site_pool = None if model.stream(layer) else model.pool(layer)
        sums: list[list[Tensor | int]] = [[0 for _ in rows] for _ in readers]
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
                    for i, c in enumerate(readers):
                        out = store.get(i)
                        if out is None or out.grad is None:
                            continue
                        for j, r in enumerate(rows):
                            h = store[("h", j)]
                            if isinstance(r.producer, nn.Conv2d):
                                pool = (
                                    site_pool if site_pool is not None else _resample(r.producer, h, store[("in", i)])
                                )
                                part = channel_product(r.producer, h, out.grad, c.module, c.kind, pool)
                            elif isinstance(r.producer, nn.Linear):
                                part = out.grad.T @ h
                            else:
                                raise GrowthError(
                                    f"GradMax grows Linear and Conv2d sites, not {type(r.producer).__name__}"
                                )
                            sums[i][j] = sums[i][j] + part * h.shape[0]
                    count += x.shape[0]
        finally:
            for hd in handles:
                hd.remove()
            model.zero_grad(set_to_none=True)
            for mod, mode in modes.items():
                mod.training = mode
        n = model.hidden_sizes[layer]
        return [
            [
                (s if isinstance(s, Tensor) else torch.zeros(c.weight.numel() // n, r.fan_in, device=device))
                / max(count, 1)
                for s, r in zip(per, rows)
            ]
            for per, c in zip(sums, readers)
        ]

    def _extend_layer(self, model: Growable, layer: int, k: int, ctx: GrowthContext) -> Tensor:
        rows = model.members(layer)
        products = self.gradient_product(model, layer, ctx)
        outs = []
        grads = [torch.zeros(k, r.fan_in, device=r.weight.device) for r in rows]
        for Ms, c in zip(products, model.consumers(layer)):
            # one outgoing slice per reader serves every producer: the top directions of all their products
            U, _, _ = torch.linalg.svd(torch.cat(Ms, 1), full_matrices=True)
            cols = U[:, : min(k, U.shape[1])]
            if cols.shape[1] < k:  # more new units than directions: fill with random unit vectors
                extra = torch.randn(U.shape[0], k - cols.shape[1], device=U.device)
                cols = torch.cat([cols, extra / extra.norm(dim=0, keepdim=True).clamp_min(1e-12)], 1)
            v = cols * self.out_scale
            # a unit's outgoing slice is a column of p·r entries: as a unit view (p, k, r)
            outs.append(v.view(c.weight.shape[0], -1, k).permute(0, 2, 1))
            for g, M in zip(grads, Ms):
                g += v.T @ M
        target = 1.0 / math.sqrt(3.0) if self.incoming_norm is None else float(self.incoming_norm)
        ws = [-g / g.norm(dim=1, keepdim=True).clamp_min(1e-12) * target for g in grads]
        bs = [torch.zeros(k, device=w.device) for w in ws]
        return model.add_units(layer, ws, bs, outs, cohort=ctx.cohort)


def _resample(conv: nn.Conv2d, x: Tensor, reader_input: torch.Size) -> nn.Module | None:
    """How a stream producer's output reaches a reader of another resolution (a pooling between
    them, taken as an average as for a max-pool of all-zero maps): ``None`` at the same one."""
    out = F.conv2d(x[:1], conv.weight[:1], None, conv.stride, conv.padding, conv.dilation).shape[2]
    size = reader_input[2] if len(reader_input) == 4 else 1
    if out == size or len(reader_input) != 4:
        return None
    if out % size:
        raise GrowthError(f"GradMax: a stream's {out}x{out} maps reach a reader at {size}x{size}")
    return nn.AvgPool2d(out // size)


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


def _by_task(model: Growable, x: Tensor, y: Tensor, t: Tensor | None) -> list[tuple[Tensor, Tensor, Tensor | None]]:
    """The batch, split by task label when each task reads its own head (else as it is)."""
    if t is None or not getattr(model, "heads_per_task", False):
        return [(x, y, t)]
    labels = torch.unique(t)
    if labels.numel() == 1:
        return [(x, y, t)]
    return [(x[t == lab], y[t == lab], t[t == lab]) for lab in labels]
