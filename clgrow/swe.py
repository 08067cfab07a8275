r"""Shared-Weights Extender (SWE).

For a hidden layer with old weights :math:`W \in \mathbb{R}^{n \times m}`, biases
:math:`b \in \mathbb{R}^n` and ``k`` new units with default-initialised rows :math:`r_j`
(biases :math:`\beta_j`), SWE introduces coupling parameters

.. math::  C \in \mathbb{R}^{k \times s \times m}, \qquad c \in \mathbb{R}^{k \times s},

initialised :math:`\mathcal N(0, \sigma^2)` (``sigma = init_std``), where the ``s`` *partners*
are the old units each new unit is coupled with (all ``n`` by default). While coupled the
layer computes with the effective weights

.. math::
    \tilde W_i = W_i - \textstyle\sum_j C_{j,i}, \qquad
    \tilde r_j = r_j + \textstyle\sum_i C_{j,i}

(biases likewise), so weight flows from each old unit to each new one and every column sum
:math:`\sum_i \tilde W_{i,\cdot} + \sum_j \tilde r_{j,\cdot}` is conserved. A new unit that never
fires still receives gradient through ``C`` (the difference of its own gradient and the old
units'), which is what keeps it alive.

Adjustment trains ``C``, ``c`` and the consumer's weight ``V`` (shape ``(p, n + k)``, new columns
starting at zero) with Adam; the layer's own ``W``, ``b`` and every other parameter are left out
of the optimizer, so nothing else moves (no weight-decay leak on frozen weights). Then ``C``,
``c`` are folded into ``W``, ``b`` and dropped. Layers are processed from the last to the first.

Memory: ``C`` holds ``k * s * m`` floats; with its gradient and Adam's two moments that is
``16 * k * s * m`` bytes (float32). ``max_coupling_bytes`` guards it: ``on_oversize="error"``
refuses the step, ``"subsample"`` couples each new unit with fewer old units so it fits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from clgrow.data import iter_passes, unpack
from clgrow.errors import GrowthError
from clgrow.extender import Extender, LossFn, extenders, model_device
from clgrow.model import GrowableMLP, default_linear_init

__all__ = ["SWE", "coupled_weights"]

_BYTES_PER_COUPLING_ENTRY = 16  # value + grad + Adam's exp_avg and exp_avg_sq, float32


def coupled_weights(
    weight: Tensor, bias: Tensor, n_old: int, partners: Tensor, C: Tensor, c: Tensor
) -> tuple[Tensor, Tensor]:
    """Effective weights of a coupled layer.

    Parameters
    ----------
    weight : Tensor ``(n + k, m)``
        The layer's weight, old rows first, then the ``k`` new rows ``r_j``.
    bias : Tensor ``(n + k,)``
    n_old : int
        Number of old units ``n``.
    partners : LongTensor ``(s,)``
        Old units coupled with the new ones.
    C : Tensor ``(k, s, m)``
    c : Tensor ``(k, s)``

    Returns
    -------
    (Tensor ``(n + k, m)``, Tensor ``(n + k,)``)
        Old partner rows lose ``sum_j C[j]``; new row ``j`` gains ``sum_i C[j, i]``.
    """
    w_old = weight[:n_old].index_add(0, partners, -C.sum(0))
    b_old = bias[:n_old].index_add(0, partners, -c.sum(0))
    w_new = weight[n_old:] + C.sum(1)
    b_new = bias[n_old:] + c.sum(1)
    return torch.cat([w_old, w_new]), torch.cat([b_old, b_new])


def _adam(params: list[Any], lr: float) -> torch.optim.Optimizer:
    """Adam, fused where the build supports it: the coupling tensor is large, and the fused
    kernel updates it several times faster than the per-tensor loop (same algorithm)."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(params, lr=lr)


@extenders.register("swe")
class SWE(Extender):
    """Shared-Weights Extender.

    Parameters
    ----------
    passes : float
        Adjustment budget per layer, in passes over the growth data (fractions allowed; at
        least one batch). The paper adjusts for a full pass (``passes=1``, preset
        ``swe-svod-paper``); the default 0.05 was chosen by ``experiments.bench.budget``: it keeps
        new-unit inactivity and accuracy at the full budget's level on split-mnist-5k for
        under one epoch per growth step (see BENCHMARKS.md).
    lr : float
        Adam learning rate for ``C``, ``c`` and ``V``.
    init_std : float
        Standard deviation of the coupling initialisation.
    partners : int, optional
        Old units each new unit is coupled with (``None``: all of them, the paper's setting).
    max_coupling_bytes : int
        Memory guard for the coupling tensor with its gradient and optimizer state.
    on_oversize : {"error", "subsample"}
        What to do when the guard is exceeded.
    coupling_lr : float, optional
        Adam learning rate for ``C`` and ``c`` only (default: ``lr``). Each old unit moves by
        the sum of ``k`` coupling slices, so under Adam it moves about ``k`` times faster than
        ``lr`` suggests; a smaller ``coupling_lr`` limits that disturbance.
    """

    def __init__(
        self,
        passes: float = 0.05,
        lr: float = 1e-3,
        init_std: float = 1e-4,
        partners: int | None = None,
        max_coupling_bytes: int = 2 * 1024**3,
        on_oversize: str = "error",
        coupling_lr: float | None = None,
    ) -> None:
        super().__init__()
        if passes < 0 or not math.isfinite(passes):
            raise GrowthError(f"SWE passes must be a finite number >= 0, got {passes}")
        if lr <= 0:
            raise GrowthError(f"SWE lr must be > 0, got {lr}")
        if init_std < 0:
            raise GrowthError(f"SWE init_std must be >= 0, got {init_std}")
        if partners is not None and partners < 1:
            raise GrowthError(f"SWE partners must be >= 1 or None, got {partners}")
        if on_oversize not in ("error", "subsample"):
            raise GrowthError(f"SWE on_oversize must be 'error' or 'subsample', got {on_oversize!r}")
        self.passes = float(passes)
        self.lr = float(lr)
        self.init_std = float(init_std)
        self.partners = partners
        self.max_coupling_bytes = int(max_coupling_bytes)
        self.on_oversize = on_oversize
        if coupling_lr is not None and coupling_lr <= 0:
            raise GrowthError(f"SWE coupling_lr must be > 0 or None, got {coupling_lr}")
        self.coupling_lr = coupling_lr

    def __repr__(self) -> str:
        return (
            f"SWE(passes={self.passes}, lr={self.lr}, init_std={self.init_std}, partners={self.partners}, "
            f"on_oversize={self.on_oversize!r}, coupling_lr={self.coupling_lr})"
        )

    @staticmethod
    def coupling_bytes(k: int, partners: int, in_features: int) -> int:
        """Bytes for ``C`` with its gradient and Adam state (float32)."""
        return _BYTES_PER_COUPLING_ENTRY * k * partners * in_features

    def _partners_for(self, n_old: int, k: int, m: int, layer: int) -> int:
        s = n_old if self.partners is None else min(self.partners, n_old)
        need = self.coupling_bytes(k, s, m)
        if need <= self.max_coupling_bytes:
            return s
        fit = self.max_coupling_bytes // (_BYTES_PER_COUPLING_ENTRY * k * m)
        if self.on_oversize == "subsample" and fit >= 1:
            return int(fit)
        raise GrowthError(
            f"SWE coupling for layer {layer} needs {need / 2**20:.1f} MiB (k={k} new x s={s} old units x "
            f"m={m} inputs x {_BYTES_PER_COUPLING_ENTRY} bytes), over max_coupling_bytes="
            f"{self.max_coupling_bytes / 2**20:.1f} MiB; pass SWE(on_oversize='subsample') or fewer "
            "partners, or grow by fewer units"
        )

    def check(self, model: GrowableMLP, allocation: Mapping[int, int]) -> None:
        """Apply the memory guard to every layer before any layer changes."""
        for layer, k in allocation.items():
            if k > 0:
                self._partners_for(model.hidden_sizes[layer], k, model.hidden[layer].in_features, layer)

    def _extend_layer(
        self, model: GrowableMLP, layer: int, k: int, loader: Iterable[Any], loss_fn: LossFn, cohort: int
    ) -> Tensor:
        lin = model.hidden[layer]
        n_old, m = lin.weight.shape
        s = self._partners_for(n_old, k, m, layer)
        device = model_device(model)
        w0, b0 = default_linear_init(k, m)
        new_idx = model.add_units(layer, w0, b0, None, cohort=cohort)
        if n_old == 0 or self.passes == 0:
            return new_idx
        partners = (
            torch.arange(n_old, device=device)
            if s == n_old
            else torch.randperm(n_old, device=device)[:s].sort().values
        )
        C = nn.Parameter(torch.randn(k, s, m, device=device) * self.init_std)
        c = nn.Parameter(torch.randn(k, s, device=device) * self.init_std)
        consumers = [cons.weight for cons in model.consumers(layer)]
        started = time.perf_counter()
        steps = self._adjust(model, layer, n_old, partners, C, c, consumers, loader, loss_fn, device)
        with torch.no_grad():
            w, b = coupled_weights(lin.weight, lin.bias, n_old, partners, C, c)
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        self.info[f"layer{layer}"] = {
            "k": k,
            "partners": s,
            "coupling_entries": k * s * m,
            "coupling_mib": self.coupling_bytes(k, s, m) / 2**20,
            "steps": steps,
            "seconds": time.perf_counter() - started,
        }
        return new_idx

    def _adjust(
        self,
        model: GrowableMLP,
        layer: int,
        n_old: int,
        partners: Tensor,
        C: nn.Parameter,
        c: nn.Parameter,
        consumers: list[nn.Parameter],
        loader: Iterable[Any],
        loss_fn: LossFn,
        device: torch.device,
    ) -> int:
        lin = model.hidden[layer]
        flags = {p: p.requires_grad for p in model.parameters()}
        modes = {mod: mod.training for mod in model.modules()}
        # Freezing by requires_grad (not only by leaving parameters out of the optimizer)
        # also keeps autograd from back-propagating into the frozen layers below.
        for p in model.parameters():
            p.requires_grad_(False)
        for p in consumers:
            p.requires_grad_(True)
        model.eval()
        lr_c = self.lr if self.coupling_lr is None else self.coupling_lr
        opt = _adam([{"params": [C, c], "lr": lr_c}, {"params": consumers, "lr": self.lr}], self.lr)
        steps = 0
        try:
            for batch in iter_passes(loader, self.passes):
                x, y, t = unpack(batch, device)
                w, b = coupled_weights(lin.weight, lin.bias, n_old, partners, C, c)
                logits, _ = model.run(x, t, weights={layer: (w, b)})
                loss = loss_fn(logits, y)
                if not torch.isfinite(loss):
                    raise GrowthError(
                        f"SWE adjustment of layer {layer}: loss became {loss.item()} at step {steps}; "
                        "the growth step was undone (try a lower SWE lr)"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                steps += 1
        finally:
            for p in consumers:
                p.grad = None
            for p, flag in flags.items():
                p.requires_grad_(flag)
            for mod, mode in modes.items():
                mod.training = mode
        return steps
