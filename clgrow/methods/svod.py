r"""Steepest Voting Distributor (SVoD).

Decides how many of ``K`` new units each hidden layer gets, on a throw-away copy:

1. Add ``candidates * K`` candidate units to every eligible hidden layer (incoming weights,
   biases and the new outgoing columns uniform in ``±init_range``).
2. Train the whole copy for ``train_passes`` passes (RMSprop, lr 1e-3, momentum 0.1, alpha 0.9).
3. Gate the candidates: their pre-activations :math:`z_j` become :math:`z_j (1 + y_j)` with
   ``y = 0``. One more pass without updates (``vote_passes``) averages
   :math:`\partial L / \partial y_j` over the batches.
4. Pool the candidates' derivatives and sort ascending: the ``K`` most negative (the steepest
   descent directions) each cast one vote for their layer. When the layers hold different
   numbers of candidates (``width_cap``), each layer votes with as many scores as the layer of
   most candidates, read from its own scores' quantile function, so a capped layer is not
   outvoted for having fewer candidates (equal counts vote as drawn, the paper's rule).

The allocation is the vote count per layer, so it always sums to ``K``. The original model
is never touched.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from clgrow.data import GrowthContext, LossFn, model_device
from clgrow.errors import GrowthError
from clgrow.methods import PAPER_SVOD, SVOD_PASSES, SVoDParams
from clgrow.methods.distributor import Distributor
from clgrow.methods.grow import unit_params
from clgrow.sites import Growable, as_growable, growable_from_loader

__all__ = ["SVoD"]

#: What ``train_passes=None`` and ``vote_passes=None`` become: the staged frontier's budget in plain
#: training, and a quarter of it at a stream's new experience, where the growth data are a whole
#: experience and growth happens at every one (BENCHMARKS.md).
PLAIN_PASSES, NEW_TASK_PASSES = SVOD_PASSES


class SVoD(Distributor):
    """Steepest Voting Distributor.

    ``train_passes`` and ``vote_passes`` default to the measured budget (the paper: one pass
    each). ``width_cap`` caps a layer's candidates at ``ceil(width_cap · n)`` (at least ``ceil(K /
    L)``, so the pool holds ``K`` votes): the copy then costs at most ``(1 + width_cap)²`` times
    the model per sample, where ``2K`` candidates on a narrow convolution cost many times more.
    Its default, 0.5, is the frontier's choice (BENCHMARKS.md, "SVoD affordable on
    convolutions"). ``max_copy_bytes`` is counted exactly before anything is allocated; over it,
    ``on_oversize="reduce"`` votes with fewer candidates (the number used is in ``info``).
    """

    #: The paper's budget: one pass to train the candidates, one to vote.
    PAPER: SVoDParams = PAPER_SVOD

    Params = SVoDParams
    params: SVoDParams
    train_passes: float | None
    vote_passes: float | None
    candidates: int
    width_cap: float | None
    init_range: float
    lr: float
    momentum: float
    alpha: float
    max_copy_bytes: int
    on_oversize: str

    def passes_for(self, new_task: bool) -> tuple[float, float]:
        """``(train_passes, vote_passes)`` of a step, ``None`` resolved for the setting."""
        auto = NEW_TASK_PASSES if new_task else PLAIN_PASSES
        return (
            auto[0] if self.train_passes is None else self.train_passes,
            auto[1] if self.vote_passes is None else self.vote_passes,
        )

    def _allocate(self, model: Growable, k: int, ctx: GrowthContext) -> dict[int, int]:
        """Vote on a copy of ``model``; return ``{layer: votes}`` summing to ``k``."""
        ls = ctx.layers
        scores = self._scores(model, k, ctx)
        # every layer votes with as many scores as the layer of most candidates: a capped layer's
        # are its sorted scores' quantile function read at that many points (a layer of fewer
        # candidates would otherwise lose votes to one of more, whose best scores are more extreme
        # by number alone); layers of equal counts vote with their scores as drawn
        most = max(len(scores[i]) for i in ls)
        votes_of = {i: _resample(scores[i], most) for i in ls}
        pooled = torch.cat([votes_of[i] for i in ls])
        owner = torch.cat([torch.full_like(votes_of[i], i, dtype=torch.long) for i in ls])
        order = torch.sort(pooled, stable=True).indices[:k]
        votes = torch.bincount(owner[order], minlength=model.num_hidden_layers)
        self.info = {"scores": {i: scores[i].tolist() for i in ls}, "candidates": {i: len(scores[i]) for i in ls}}
        return {i: int(votes[i]) for i in ls}

    def candidates_for(self, model: nn.Module, k: int, layers: Sequence[int]) -> dict[int, int]:
        """Candidates each of ``layers`` gets for a step of ``k`` units (``candidates · k``, capped:
        :meth:`SVoDParams.per_layer`)."""
        return self.params.per_layer(as_growable(model).hidden_sizes, k, layers)

    def candidate_scores(
        self, model: nn.Module, k: int, loader: Iterable[Any], loss_fn: LossFn, layers: Sequence[int]
    ) -> dict[int, Tensor]:
        """Mean ``dL/dy`` of every candidate, per layer (each of shape ``(candidates_for(...)[layer],)``)."""
        grown = growable_from_loader(model, loader)
        return self._scores(grown, k, GrowthContext(loader, loss_fn, list(layers), device=model_device(grown)))

    @staticmethod
    def copy_numel(model: nn.Module | Growable, cand: int | Mapping[int, int], layers: Sequence[int]) -> int:
        """Parameters of the candidate copy: ``model`` with ``cand`` units (or ``cand[layer]``) added
        to each of ``layers``."""
        grown = as_growable(model)  # type: ignore[arg-type]  # a site view is itself
        per = {i: cand for i in layers} if isinstance(cand, int) else dict(cand)
        extra = 0
        for i, c_i in per.items():
            n = grown.hidden_sizes[i]
            extra += c_i * unit_params(grown, i)
            for c in grown.consumers(i):
                if c.site in per:
                    # the reader's own candidates also read these ones (r columns each)
                    extra += c_i * per[c.site] * (c.weight.numel() // n // grown.hidden_sizes[c.site])
        return sum(p.numel() for p in grown.parameters()) + extra

    @staticmethod
    def copy_bytes(model: nn.Module, cand: int | Mapping[int, int], layers: Sequence[int]) -> int:
        """The most bytes the candidate copy holds: its parameters (:meth:`copy_numel`) with their
        gradients and RMSprop's two buffers, float32."""
        return SVoD.copy_numel(model, cand, layers) * 4 * 4

    def _scores(self, model: Growable, k: int, ctx: GrowthContext) -> dict[int, Tensor]:
        ctx.require_data("SVoD")  # before the copy is made
        device, layers, loss_fn = ctx.device, ctx.layers, ctx.loss("SVoD")
        train_passes, vote_passes = self.passes_for(ctx.new_task)
        cands = self.candidates_for(model, k, layers)  # type: ignore[arg-type]
        copies = 4 if train_passes > 0 else 2  # weights and gradients, plus RMSprop's two buffers

        def need(c: int) -> int:
            return self.copy_numel(model, {i: min(c, n) for i, n in cands.items()}, layers) * 4 * copies

        most = max(cands.values())
        size = need(most)
        fewest = -(-k // len(layers))  # the pooled candidates must hold K votes
        if size > self.max_copy_bytes and self.on_oversize == "reduce" and need(fewest) <= self.max_copy_bytes:
            lo, hi = fewest, most  # need() grows with c: the largest c that fits
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if need(mid) <= self.max_copy_bytes else (lo, mid - 1)
            cands, size = {i: min(lo, n) for i, n in cands.items()}, need(lo)
        if size > self.max_copy_bytes:
            raise GrowthError(
                f"SVoD: voting on K={k} with {self.candidates}x candidates per layer needs a copy of about "
                f"{size / 1024**3:.2f} GiB, above max_copy_bytes={self.max_copy_bytes / 1024**3:.2f} GiB; grow fewer "
                "units per step, use candidates=1 or on_oversize='reduce', or raise max_copy_bytes"
            )
        probe = copy.deepcopy(model)
        for p in probe.parameters():
            p.requires_grad_(True)
        r = self.init_range
        with torch.no_grad():
            for i in layers:
                n, cand = probe.hidden_sizes[i], cands[i]
                # unit views (p, cand, r): the same draws as (p, cand) when a unit owns one column
                views = [c.view(n) for c in probe.consumers(i)]
                outs = [torch.empty(v.shape[0], cand, v.shape[2], device=device).uniform_(-r, r) for v in views]
                rows = [
                    (
                        torch.empty(cand, m.fan_in, device=device).uniform_(-r, r),
                        torch.empty(cand, device=device).uniform_(-r, r),
                    )
                    for m in probe.members(i)
                ]
                probe.add_units(i, [w for w, _ in rows], [b for _, b in rows], outs)
        if train_passes > 0:
            probe.train()
            opt = torch.optim.RMSprop(probe.parameters(), lr=self.lr, momentum=self.momentum, alpha=self.alpha)
            for x, y, t in ctx.batches(train_passes, "SVoD"):
                loss = loss_fn(probe(x, t), y)
                if not torch.isfinite(loss):
                    raise GrowthError(f"SVoD candidate training: loss became {loss.item()}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        probe.eval()
        for p in probe.parameters():
            p.requires_grad_(False)
        ys = {i: torch.zeros(cands[i], device=device, requires_grad=True) for i in layers}
        sizes = probe.hidden_sizes
        total = {i: torch.zeros(cands[i], device=device) for i in layers}
        batches = 0
        for x, y, t in ctx.batches(vote_passes, "SVoD"):
            gates = {i: torch.cat([torch.ones(sizes[i] - cands[i], device=device), 1.0 + ys[i]]) for i in layers}
            logits, _ = probe.run(x, t, gates=gates)
            grads = torch.autograd.grad(loss_fn(logits, y), [ys[i] for i in layers], allow_unused=True)
            for i, g in zip(layers, grads):
                if g is not None:
                    total[i] += g
            batches += 1
        del probe
        return {i: total[i] / max(batches, 1) for i in layers}


def _resample(scores: Tensor, n: int) -> Tensor:
    """``scores`` ``(c,)`` as ``n`` values: themselves when ``c == n``, else their empirical
    quantile function at ``n`` evenly spaced levels (linear between order statistics)."""
    c = scores.numel()
    if c == n:
        return scores
    ordered = torch.sort(scores).values
    level = ((torch.arange(n, device=scores.device) + 0.5) * c / n - 0.5).clamp(0, c - 1)
    lo = level.floor().long()
    hi = level.ceil().long()
    return torch.lerp(ordered[lo], ordered[hi], level - lo)
