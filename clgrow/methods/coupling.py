r"""The two ways SWE couples a layer's new units to its old ones.

Both move weight between old units ``i`` and new units ``j`` only in pairs (what ``j`` gains
from ``i``, ``i`` loses), so every column sum of ``[W | b]`` is conserved. ``DenseCoupling`` is
the paper's: a tensor ``C (k, s, m)`` trained by Adam, ``16·k·s·m`` bytes. ``FactoredCoupling``
never builds ``C``: a pair's gradient is the difference of two rows' gradients, so each row
keeps its own Adam moments and the pairwise transfers sum in closed form, ``O((s + k)·m)`` per
step (``normalise="column"``, one second moment per input column; ``trust`` bounds the old
rows' move, widened by ``trust_snr`` as Adam's signal-to-noise ratio falls), or in bounded
chunks with a second moment per pair (``normalise="pair"``). Derivation: docs/growth.md
("How the methods work").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from clgrow.methods import OLD_ROWS
from clgrow.surgery import Producer

__all__ = ["DenseCoupling", "FactoredCoupling", "coupled_weights"]

# OLD_ROWS: the old partner rows give what the new rows gain (``move``, the paper), give it only
# while coupled and get it back at bake-in (``restore``), or never give it (``keep``: the new rows
# receive the transfers one-sidedly and the old units' function is untouched).
BYTES_PER_DENSE_ENTRY = 16  # value + grad + Adam's exp_avg and exp_avg_sq, float32


def coupled_weights(
    weight: Tensor, bias: Tensor, n_old: int, partners: Tensor, C: Tensor, c: Tensor
) -> tuple[Tensor, Tensor]:
    """Effective weights of a densely coupled layer.

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


class _Coupling:
    """What both couplings hold: the grown layer and which of its rows are coupled.

    Parameters
    ----------
    lin : nn.Linear or convolution
        The grown layer (``n_old + k`` rows, new rows last).
    n_old : int
    partners : LongTensor ``(s,)``
        Old units coupled with the new ones.
    lr : float
        Step size of the coupling.
    old_rows : {"move", "restore", "keep"}
        ``move``: the old rows lose what the new rows gain (column sums conserved). ``restore``: as
        ``move`` while coupled, then :meth:`bake` puts the old rows back. ``keep``: the old rows
        never change; the new rows still receive every transfer (column sums not conserved).
    """

    def __init__(self, lin: Producer, n_old: int, partners: Tensor, lr: float, old_rows: str = "move") -> None:
        if old_rows not in OLD_ROWS:
            raise ValueError(f"old_rows must be one of {OLD_ROWS}, got {old_rows!r}")
        self.lin, self.n_old, self.partners, self.lr, self.old_rows = lin, n_old, partners, lr, old_rows
        rows = lin.weight.shape[0]
        self.k, self.m, self.s = rows - n_old, lin.weight.numel() // max(rows, 1), partners.numel()
        # restore: the old rows' weights at coupling time, put back at bake-in
        self._saved = (
            None if old_rows != "restore" else (lin.weight[:n_old].detach().clone(), self.bias[:n_old].detach().clone())
        )

    @property
    def weight(self) -> Tensor:
        """The layer's weight as rows ``(n + k, m)``: a view (a convolution's filter is one row)."""
        return self.lin.weight.view(self.n_old + self.k, self.m)

    @property
    def bias(self) -> Tensor:
        """The layer's bias ``(n + k,)`` (every coupled producer has one)."""
        b = self.lin.bias
        assert b is not None  # given by GrowableModule.prepare before growth
        return b

    @torch.no_grad()
    def _restore_old(self) -> None:
        if self._saved is not None:
            self.lin.weight[: self.n_old] = self._saved[0]
            self.bias[: self.n_old] = self._saved[1]
            self._saved = None

    @property
    def scaled_steps(self) -> int:
        """Steps a trust region cut short (none without one)."""
        return 0


class DenseCoupling(_Coupling):
    """``C (k, s, m)`` and ``c (k, s)`` as trainable tensors (the paper's SWE), trained by Adam
    at ``lr`` (see :class:`_Coupling` for the other arguments).

    Parameters
    ----------
    init_std : float
        ``C`` and ``c`` start ``N(0, init_std²)``.
    """

    def __init__(
        self, lin: Producer, n_old: int, partners: Tensor, lr: float, init_std: float, old_rows: str = "move"
    ) -> None:
        super().__init__(lin, n_old, partners, lr, old_rows)
        device = lin.weight.device
        self.C = nn.Parameter(torch.randn(self.k, self.s, self.m, device=device) * init_std)
        self.c = nn.Parameter(torch.randn(self.k, self.s, device=device) * init_std)

    @property
    def state_bytes(self) -> int:
        """Bytes of ``C`` with its gradient and Adam state."""
        return BYTES_PER_DENSE_ENTRY * self.C.numel()

    def trainable(self) -> list[nn.Parameter]:
        """Tensors an optimizer must step (``C`` and ``c``)."""
        return [self.C, self.c]

    def effective(self) -> tuple[Tensor, Tensor]:
        """The layer's effective weight ``(n + k, m)`` and bias ``(n + k,)``."""
        w, b = coupled_weights(self.weight, self.bias, self.n_old, self.partners, self.C, self.c)
        if self.old_rows == "keep":
            n = self.n_old
            w, b = torch.cat([self.weight[:n], w[n:]]), torch.cat([self.bias[:n], b[n:]])
        return w, b

    def step(self) -> None:
        """Nothing: the optimizer steps ``C`` and ``c``."""

    @torch.no_grad()
    def bake(self) -> None:
        """Fold ``C`` and ``c`` into the layer's weights."""
        w, b = self.effective()
        self.lin.weight.copy_(w.view_as(self.lin.weight))
        self.bias.copy_(b)
        self._restore_old()


class FactoredCoupling(_Coupling):
    """Pairwise transfers from per-row Adam moments; no ``C`` is stored (``lr`` is ``η`` of one
    pair's transfer; see :class:`_Coupling` for the other arguments).

    The layer's own weight and bias are the effective ones: the caller lets autograd fill
    their ``.grad`` (``∂L/∂W̃`` and ``∂L/∂r̃``) and calls :meth:`step`.

    Parameters
    ----------
    normalise : {"column", "pair"}
    clip : float, optional
        Bound on the column-normalised step of each row.
    trust : float, optional
        Bound on each step's relative move of the old partner rows, ``||ΔW̃_old|| <= trust ·
        ||W̃_old||`` (Frobenius, over ``[W | b]``); :attr:`scaled_steps` counts the steps it cut.
    trust_snr : float, optional
        Widen the bound to ``trust · max(1, (trust_snr / ρ)²)``, with ``ρ`` the old partners'
        gradient signal-to-noise ratio from the Adam moments (``None``: a fixed bound).
    betas, eps : Adam's constants.
    chunk_bytes : int
        Memory bound of one chunk of pair terms (``normalise="pair"``).
    """

    def __init__(
        self,
        lin: Producer,
        n_old: int,
        partners: Tensor,
        lr: float,
        normalise: str = "column",
        clip: float | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        chunk_bytes: int = 64 * 2**20,
        trust: float | None = None,
        trust_snr: float | None = None,
        old_rows: str = "move",
    ) -> None:
        super().__init__(lin, n_old, partners, lr, old_rows)
        self.normalise, self.betas, self.eps, self.chunk_bytes = normalise, betas, eps, chunk_bytes
        self.clip, self.trust, self.trust_snr = clip, trust, trust_snr
        device = lin.weight.device
        self._scaled = torch.zeros((), dtype=torch.long, device=device)
        # Moments of [grad W | grad b] per row: old partners first, then new rows. The gradient
        # and the step live in two buffers of the same shape; the views over all four are
        # taken once, as slicing costs more than the arithmetic on small layers.
        rows, s = (self.s + self.k, self.m + 1), self.s
        self.exp_avg, self.exp_avg_sq, self._grad, self._d = (torch.zeros(rows, device=device) for _ in range(4))
        self._m_old, self._m_new = self.exp_avg[:s], self.exp_avg[s:]
        self._v_old, self._v_new = self.exp_avg_sq[:s], self.exp_avg_sq[s:]
        self._g_old, self._g_new = self._grad[:s], self._grad[s:]
        self._d_old, self._d_new = self._d[:s], self._d[s:]
        self._d_w, self._d_b = self._d[:, :-1], self._d[:, -1]
        self.steps = 0

    @property
    def state_bytes(self) -> int:
        """Bytes of the per-row moments, the update buffers and one chunk of pair terms."""
        rows = self.exp_avg.numel()
        pair = 0 if self.normalise != "pair" else min(self.chunk_bytes, 4 * 3 * rows * self.s)
        return 4 * 4 * rows + pair

    def trainable(self) -> list[Tensor]:
        """Tensors whose gradients :meth:`step` reads (the layer's weight and bias)."""
        return [self.lin.weight, self.bias]

    def effective(self) -> tuple[Tensor, Tensor]:
        """The layer's own weight ``(n + k, m)`` and bias ``(n + k,)``."""
        return self.weight, self.bias

    @torch.no_grad()
    def step(self) -> None:
        """Apply one step of pairwise transfers from the gradients in ``.grad``."""
        b = self.bias
        if self.lin.weight.grad is None or b.grad is None:
            return
        w, w_grad = self.weight, self.lin.weight.grad.view(self.n_old + self.k, self.m)
        n, s, k = self.n_old, self.s, self.k
        grad = self._grad
        if s == n:
            torch.cat([w_grad, b.grad[:, None]], 1, out=grad)
        else:
            grad[:s, :-1], grad[:s, -1] = w_grad[:n][self.partners], b.grad[:n][self.partners]
            grad[s:, :-1], grad[s:, -1] = w_grad[n:], b.grad[n:]
        beta1, beta2 = self.betas
        self.steps += 1
        bc1, bc2 = 1 - beta1**self.steps, 1 - beta2**self.steps
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        d = self._d
        if self.normalise == "pair":
            d_new, d_old = self._pair_transfers(
                self._m_old / bc1, self._v_old / bc2, self._m_new / bc1, self._v_new / bc2
            )
            self._d_old.copy_(d_old)
            self._d_new.copy_(d_new)
        else:
            # One second moment per input column, shared by every pair: the sums separate.
            den = (self._v_old.mean(0) + self._v_new.mean(0)).div_(bc2).sqrt_().add_(self.eps).mul_(bc1)
            u = torch.div(self.exp_avg, den, out=grad)  # the gradient is in the moments now
            if self.clip is not None:
                u.clamp_(-self.clip, self.clip)
            torch.sub(self._g_new.sum(0), self._g_old, alpha=k, out=self._d_old)
            torch.sub(self._g_old.sum(0), self._g_new, alpha=s, out=self._d_new)
        # d holds the transfers per unit step size: one multiplication applies lr and the bound.
        d.mul_(self.lr if self.trust is None else self._bound(w, b, bc1, bc2))
        if self.old_rows == "keep":
            self._d_old.zero_()  # the bound above was taken on the move the old rows would make
        if s == n:
            w.add_(self._d_w)
            b.add_(self._d_b)
        else:
            w[n:] += self._d_new[:, :-1]
            b[n:] += self._d_new[:, -1]
            w.index_add_(0, self.partners, self._d_old[:, :-1])
            b.index_add_(0, self.partners, self._d_old[:, -1])

    def _bound(self, w: Tensor, b: Tensor, bc1: float, bc2: float) -> Tensor:
        """Step size (0-dim) for the transfers per unit step in ``_d``: ``lr``, scaled down so the old
        partner rows move by at most ``trust`` times their own norm (widened for a noisy
        gradient with ``trust_snr``; ``bc1``, ``bc2``: this step's Adam bias corrections); one
        factor for both sides keeps every transfer pairwise.
        No host sync and no copy of the weights when every old unit is a partner; few tensor
        operations, as each costs more than its arithmetic on small layers."""
        n = self.n_old
        norm = torch.linalg.vector_norm
        rows = slice(0, n) if self.s == n else self.partners
        assert self.trust is not None  # step_scale runs only with a trust region
        limit = torch.hypot(norm(w[rows]), norm(b[rows])).mul_(self.trust)
        if self.trust_snr is not None:
            # max(1, (trust_snr / ρ)²) with ρ = Σ m̂² / Σ v̂ = (Σ m² / bc1²) / (Σ v / bc2). ρ above
            # 1 (the moments average over different windows) only lowers the widening, which is
            # clamped at 1; a zero gradient leaves nothing to bound.
            signal = norm(self._m_old).square_().clamp_min_(1e-30)
            ratio = self._v_old.sum().mul_(self.trust_snr * bc1**2 / bc2).div_(signal)
            limit.mul_(ratio.clamp_(min=1.0).square_())
        factor = limit.div_(norm(self._d_old).mul_(self.lr).clamp_min_(1e-30)).clamp_(max=1.0)
        self._scaled += factor < 1
        return factor.mul_(self.lr)

    @property
    def scaled_steps(self) -> int:
        """Steps the trust region cut short."""
        return int(self._scaled)

    def _pair_transfers(self, mg: Tensor, vg: Tensor, mh: Tensor, vh: Tensor) -> tuple[Tensor, Tensor]:
        """Sum over pairs of ``(m_G,i - m_H,j) / (sqrt(v_G,i + v_H,j) + ε)`` (per unit step size),
        chunked over ``j``."""
        k = mh.shape[0]
        d_new = torch.empty_like(mh)
        d_old = torch.zeros_like(mg)
        per_j = 4 * 3 * mg.numel()
        step = max(1, min(k, self.chunk_bytes // max(per_j, 1)))
        for j0 in range(0, k, step):
            j1 = min(k, j0 + step)
            t = (mg[None] - mh[j0:j1, None]) / ((vg[None] + vh[j0:j1, None]).sqrt_().add_(self.eps))
            d_new[j0:j1] = t.sum(1)
            d_old -= t.sum(0)
        return d_new, d_old

    def bake(self) -> None:
        """Nothing to fold (the transfers were applied to the weights directly); with
        ``old_rows="restore"`` the old rows are put back."""
        self._restore_old()
