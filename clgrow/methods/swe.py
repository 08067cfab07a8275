r"""Shared-Weights Extender (SWE).

Each new unit ``j`` of a hidden layer is coupled with ``s`` old partners ``i`` through ``C``:
while coupled the layer computes with :math:`\tilde W_i = W_i - \sum_j C_{j,i}` and
:math:`\tilde r_j = r_j + \sum_i C_{j,i}` (biases likewise), so every column sum is conserved
and a new unit that never fires still receives gradient through ``C``, which keeps it alive.
Adjustment trains the coupling and the consumers' new columns with Adam (nothing else moves),
then folds the coupling into ``W`` and ``b``. At a new task (``new_task=True``) the old rows get
back what they gave, no old unit reads a new one and a shared head is put back, so old tasks'
outputs are unchanged exactly. The derivation, each option and what was measured:
docs/growth.md ("How the methods work"); the couplings' maths: :mod:`clgrow.methods.coupling`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from clgrow.data import GrowthContext
from clgrow.errors import GrowthError
from clgrow.methods import PAPER_SWE, SWE_PASSES, SWEParams
from clgrow.methods.coupling import (
    BYTES_PER_DENSE_ENTRY,
    DenseCoupling,
    FactoredCoupling,
    coupled_weights,
)
from clgrow.methods.extender import Extender
from clgrow.sites import Growable, Reader, Rows
from clgrow.surgery import default_init, unit_view

__all__ = ["SWE", "coupled_weights"]

Coupling = DenseCoupling | FactoredCoupling
#: What ``old_rows="auto"`` and ``consumers="auto"`` become: at a new task (a continual-learning
#: stream's new experience; consumers ``rehearsal_consumers`` when the growth data replay the old
#: tasks), and when the growth data is more of what the model learns.
AUTO_NEW_TASK = ("restore", "protect")  # chosen by the stream frontier (BENCHMARKS.md)
AUTO_PLAIN = ("move", "all")
#: What ``passes=None`` becomes: the staged frontier's budget in plain training, and at a new task
#: the stream frontier's, which keeps growth under a fifth of a 1-epoch stream's compute (BENCHMARKS.md).
PLAIN_PASSES, NEW_TASK_PASSES = SWE_PASSES


def _adam(params: list[Any], lr: float) -> torch.optim.Optimizer:
    """Adam, fused where the build supports it: the coupling tensor is large, and the fused
    kernel updates it several times faster than the per-tensor loop (same algorithm)."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(params, lr=lr)


class SWE(Extender):
    """Shared-Weights Extender.

    The defaults are the measured frontier choice (``clgrow.experiments.bench.frontier``,
    BENCHMARKS.md): a factored coupling with a per-column second moment, steps clipped at ``0.5``,
    of size ``coupling_lr/sqrt(k·s)``, inside a trust region of ``0.01``: no step moves the old
    partner rows by more than 1 % of their norm while their gradient keeps its direction (without
    it a new task's first batches under Naive push the old units ``k`` step sizes per step one way
    and kill them); the region widens as ``(trust_snr/ρ)²`` once Adam's signal-to-noise ratio
    ``ρ`` of that gradient falls below ``trust_snr`` (bounding noise only starves the new units).
    Every growing layer is adjusted jointly, for half a pass in plain training and 0.15 of one at
    a stream's new experience (``passes=None``). At a new task whose growth data replay old tasks
    ``consumers="auto"`` becomes ``rehearsal_consumers`` (``protect``; ``all`` disturbs old tasks
    by 1–3 points per step). The paper's procedure is ``SWE(**SWE.PAPER)`` (dense, sequential, one
    pass per layer, Adam at ``lr`` on ``C``; preset ``swe-svod-paper``). The options at length:
    docs/growth.md.
    """

    #: The paper's procedure: a dense coupling, one full pass per layer, last layer first.
    PAPER: SWEParams = PAPER_SWE

    Params = SWEParams
    passes: float | None
    lr: float
    init_std: float
    partners: int | None
    max_coupling_bytes: int
    on_oversize: str
    coupling_lr: float | None
    coupling: str
    schedule: str
    normalise: str
    clip: float | None
    coupling_scale: str
    trust: float | None
    trust_snr: float | None
    old_rows: str
    consumers: str
    new_norm: float | None
    rehearsal_consumers: str

    @staticmethod
    def coupling_bytes(k: int, partners: int, in_features: int) -> int:
        """Bytes of a dense ``C`` with its gradient and Adam state (float32)."""
        return BYTES_PER_DENSE_ENTRY * k * partners * in_features

    def _partners_for(self, n_old: int, k: int, m: int, layer: int) -> int:
        s = n_old if self.partners is None else min(self.partners, n_old)
        if self.coupling == "factored":
            return s
        need = self.coupling_bytes(k, s, m)
        if need <= self.max_coupling_bytes:
            return s
        fit = self.max_coupling_bytes // (BYTES_PER_DENSE_ENTRY * k * m)
        if self.on_oversize == "subsample" and fit >= 1:
            return int(fit)
        raise GrowthError(
            f"SWE coupling for layer {layer} needs {need / 2**20:.1f} MiB (k={k} new x s={s} old units x "
            f"m={m} inputs x {BYTES_PER_DENSE_ENTRY} bytes), over max_coupling_bytes="
            f"{self.max_coupling_bytes / 2**20:.1f} MiB; use SWE(coupling='factored') (no coupling tensor), "
            "SWE(on_oversize='subsample') or fewer partners, or grow by fewer units"
        )

    def check(self, model: Growable, allocation: Mapping[int, int]) -> None:
        """Apply the memory guard to every producer of every layer before any layer changes."""
        for layer, k in allocation.items():
            if k > 0:
                for r in model.members(layer):
                    m = r.fan_in
                    if self.schedule == "joint":
                        # the layers this producer reads grow before the couplings are built: each of
                        # their new units adds its input columns (a channel, its kernel's or its block)
                        m += sum(
                            int(allocation.get(below, 0)) * (m // model.hidden_sizes[below])
                            for below in range(model.num_hidden_layers)
                            if any(c.module is r.producer for c in model.consumers(below))
                        )
                    self._partners_for(model.hidden_sizes[layer], k, m, layer)

    def settings_for(self, new_task: bool, rehearsal: bool = False) -> tuple[str, str]:
        """``(old_rows, consumers)`` this extender uses for a growth step (``auto`` resolved)."""
        auto = AUTO_NEW_TASK if new_task else AUTO_PLAIN
        if new_task and rehearsal:
            auto = (auto[0], self.rehearsal_consumers)
        return (
            auto[0] if self.old_rows == "auto" else self.old_rows,
            auto[1] if self.consumers == "auto" else self.consumers,
        )

    def passes_for(self, new_task: bool) -> float:
        """The adjustment budget of a growth step (``passes``, or its default for the setting)."""
        if self.passes is not None:
            return self.passes
        return NEW_TASK_PASSES if new_task else PLAIN_PASSES

    def _extend_all(self, model: Growable, allocation: Mapping[int, int], ctx: GrowthContext) -> dict[int, Tensor]:
        """Insert the allotted units, adjust the couplings, bake them in; new indices per layer."""
        old_rows, consumers = self.settings_for(ctx.new_task, ctx.rehearsal)
        passes = self.passes_for(ctx.new_task)
        order = ctx.layers
        groups = [order] if self.schedule == "joint" else [[layer] for layer in order]
        new_units: dict[int, Tensor] = {}
        for group in groups:
            # Insert every unit of the group before building couplings: a layer's coupling spans
            # the input columns that the layer below gains.
            n_old = {layer: model.hidden_sizes[layer] for layer in group}
            for layer in group:
                new_units[layer] = self._insert(model, layer, int(allocation[layer]), ctx.cohort)
            couplings: dict[int, list[Coupling]] = {}
            if passes > 0:
                for layer in group:
                    if n_old[layer] > 0:
                        k = int(allocation[layer])
                        couplings[layer] = [
                            self._couple(r, layer, n_old[layer], k, old_rows) for r in model.members(layer)
                        ]
            if not couplings:
                continue
            started = time.perf_counter()
            steps = self._adjust(model, couplings, ctx, consumers, passes)
            for cps in couplings.values():
                for cp in cps:
                    cp.bake()
                    if self.new_norm is not None and old_rows != "move":
                        self._bound_new_rows(cp)
            seconds = time.perf_counter() - started
            for layer, cps in couplings.items():
                self.info[f"layer{layer}"] = {
                    "k": cps[0].k,
                    "partners": cps[0].s,
                    "coupling_mib": sum(cp.state_bytes for cp in cps) / 2**20,
                    "steps": steps,
                    "seconds": seconds,
                    "trust_scaled_steps": sum(cp.scaled_steps for cp in cps),
                    "old_rows": old_rows,
                    "consumers": consumers,
                }
        return new_units

    @torch.no_grad()
    def _bound_new_rows(self, cp: Coupling) -> None:
        """Scale down new rows ``[r_j | β_j]`` longer than ``new_norm`` times the old rows' mean norm."""
        assert self.new_norm is not None  # called only when new rows are bounded
        w, b, n_old = cp.weight, cp.bias, cp.n_old
        norms = torch.hypot(torch.linalg.vector_norm(w, dim=1), b.abs())
        limit = norms[:n_old].mean() * self.new_norm
        scale = (limit / norms[n_old:].clamp_min(1e-30)).clamp(max=1.0)
        w[n_old:] *= scale[:, None]
        b[n_old:] *= scale

    def _insert(self, model: Growable, layer: int, k: int, cohort: int) -> Tensor:
        """Add ``k`` default-initialised units with zero outgoing weights; their indices."""
        inits = [default_init(k, r.fan_in) for r in model.members(layer)]  # a filter's init has the same law
        return model.add_units(layer, [w for w, _ in inits], [b for _, b in inits], None, cohort=cohort)

    def _couple(self, r: Rows, layer: int, n_old: int, k: int, old_rows: str) -> Coupling:
        """The coupling of producer ``r``'s ``k`` new units (its last rows) with ``n_old`` old ones."""
        lin = r.producer
        s = self._partners_for(n_old, k, r.fan_in, layer)
        device = r.weight.device
        partners = (
            torch.arange(n_old, device=device) if s == n_old else torch.randperm(n_old, device=device)[:s].sort().values
        )
        step = self.lr if self.coupling_lr is None else self.coupling_lr
        if self.coupling_scale == "k":
            step /= k
        elif self.coupling_scale == "sqrt":
            step /= math.sqrt(k * s)
        if self.coupling == "dense":
            return DenseCoupling(lin, n_old, partners, step, self.init_std, old_rows=old_rows)
        return FactoredCoupling(
            lin,
            n_old,
            partners,
            step,
            self.normalise,
            self.clip,
            trust=self.trust,
            trust_snr=self.trust_snr,
            old_rows=old_rows,
        )

    @staticmethod
    def _consumer_mask(
        model: Growable, layer: int, reader: Reader, n_old: int, coupled: bool, cohort: int, consumers: str
    ) -> Tensor | None:
        """Which entries of ``reader``'s weight (its unit view ``(p, n_old + k, r)`` of ``layer``) the
        adjustment trains: ``None`` for all of them, else a 0/1 mask of the weight's shape."""
        if consumers == "all" and not coupled:
            return None
        mask = torch.zeros_like(reader.weight)
        rows: slice | Tensor = slice(None)
        if consumers in ("isolated", "scaffold", "protect") and reader.site is not None:
            # only the rows of the reader's own new units (this step's cohort) read the new units
            rows = model.cohort(reader.site) == cohort
        unit_view(mask, model.hidden_sizes[layer])[rows, n_old:] = 1.0
        return mask

    def _adjust(
        self, model: Growable, couplings: dict[int, list[Coupling]], ctx: GrowthContext, consumers: str, passes: float
    ) -> int:
        """Train the couplings and their readers jointly for ``passes``; return the number of steps."""
        loss_fn = ctx.loss("SWE")
        p: Tensor
        flags: dict[Tensor, bool] = {p: p.requires_grad for p in model.parameters()}
        modes = {mod: mod.training for mod in model.modules()}
        every = [cp for cps in couplings.values() for cp in cps]
        # Freezing by requires_grad (not only by leaving parameters out of the optimizer)
        # also keeps autograd from back-propagating into the frozen layers below.
        for p in model.parameters():
            p.requires_grad_(False)
        trained, masks = [], {}
        put_back = []
        per_task = bool(getattr(model, "heads_per_task", False))
        for layer, cps in couplings.items():
            for cp in cps:
                for p in cp.trainable():
                    p.requires_grad_(True)
            for reader in model.consumers(layer):
                if not flags[reader.weight]:
                    continue  # frozen by its owner (e.g. LFL's head): growth must not move it either
                # A coupled reader trains only the new columns directly, so its rows' column
                # sums stay the coupling's business.
                coupled = reader.site is not None and reader.site in couplings
                mask = self._consumer_mask(model, layer, reader, cps[0].n_old, coupled, ctx.cohort, consumers)
                if mask is not None and not bool(mask.any()):
                    continue
                if mask is not None:
                    masks[reader.weight] = mask
                    # protect: what every task reads and no site owns (a shared head, a layer that
                    # does not grow) is put back after the adjustment
                    if consumers == "scaffold" or (
                        consumers == "protect" and reader.site is None and not (per_task and reader.head)
                    ):
                        put_back.append(reader.weight)
                trained.append(reader.weight)
                reader.weight.requires_grad_(True)
        saved = {p: p.detach().clone() for p in put_back}
        groups: list[dict[str, Any]] = [{"params": trained, "lr": self.lr}]
        groups += [{"params": cp.trainable(), "lr": cp.lr} for cp in every if isinstance(cp, DenseCoupling)]
        opt = _adam(groups, self.lr)
        steps = 0
        model.eval()
        try:
            for x, y, t in ctx.batches(passes, "SWE"):
                weights = {cp.lin: cp.effective() for cp in every}
                logits, _ = model.run(x, t, weights=weights)
                loss = loss_fn(logits, y)
                if not torch.isfinite(loss):
                    raise GrowthError(
                        f"SWE adjustment of layers {sorted(couplings)}: loss became {loss.item()} at step "
                        f"{steps}; the growth step was undone (try a lower SWE lr)"
                    )
                opt.zero_grad(set_to_none=True)
                for cp in every:
                    for p in cp.trainable():
                        p.grad = None
                loss.backward()
                for cp in every:
                    cp.step()
                for p, mask in masks.items():
                    if p.grad is not None:
                        p.grad.mul_(mask)
                opt.step()
                steps += 1
            with torch.no_grad():
                for p, value in saved.items():  # scaffold: the consumers' trained entries go back
                    keep = masks[p].bool()
                    p[keep] = value[keep]
        finally:
            for p in trained + [p for cp in every for p in cp.trainable()]:
                p.grad = None
            for p, flag in flags.items():
                p.requires_grad_(flag)
            for mod, mode in modes.items():
                mod.training = mode
        return steps
