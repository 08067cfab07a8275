r"""The two ways SWE couples a layer's new units to its old ones.

Both move weight between old units :math:`i` (rows :math:`\tilde W_i`) and new units :math:`j`
(rows :math:`\tilde r_j`) only in pairs: whatever new unit ``j`` gains from old unit ``i`` in a
step, ``i`` loses. Every column sum of ``[W | b]`` is therefore conserved, exactly in
arithmetic and up to float rounding in practice.

``DenseCoupling`` is the paper's parametrisation: a tensor ``C`` of shape ``(k, s, m)`` (and
``c`` of shape ``(k, s)`` for the biases) trained by Adam, ``16·k·s·m`` bytes with its gradient
and Adam's two moments.

``FactoredCoupling`` never builds ``C``. The gradient of the loss with respect to a pair's
coupling is analytic, :math:`\partial L/\partial C_{j,i} = H_j - G_i` with
:math:`G_i = \partial L/\partial \tilde W_i` and :math:`H_j = \partial L/\partial \tilde r_j`.
Adam's first moment of a difference is the difference of first moments; its second moment is
not separable, so each side keeps its own Adam moments and normalises its own gradient,
:math:`\hat g_i = \hat m_{G,i} / (\sqrt{\hat v_{G,i}} + \epsilon)` and likewise :math:`\hat h_j`.
The pair transfer :math:`\Delta C_{j,i} = \eta\,(\hat g_i - \hat h_j)` sums in closed form:

.. math::
    \Delta \tilde r_j = \eta\,\big(\textstyle\sum_i \hat g_i - s\,\hat h_j\big), \qquad
    \Delta \tilde W_i = -\eta\,\big(k\,\hat g_i - \textstyle\sum_j \hat h_j\big),

``O((s + k)·m)`` time and memory per step (four floats per row entry: two moments per side).
Under dense Adam the same happens approximately: each ``C[j, i]`` moves about ``η`` per step in
the direction of ``\hat g_i - \hat h_j``; the factored form drops only the cross term
``E[H_j G_i]`` of the pair's second moment. An old unit moves about ``k·η`` per entry and step;
``η = lr / k`` (the default of ``SWE``) makes that one ordinary Adam step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["DenseCoupling", "FactoredCoupling", "coupled_weights"]

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


class DenseCoupling:
    """``C (k, s, m)`` and ``c (k, s)`` as trainable tensors (the paper's SWE).

    Parameters
    ----------
    lin : nn.Linear
        The grown layer (``n_old + k`` rows).
    n_old : int
    partners : LongTensor ``(s,)``
    lr : float
        Adam's step size for ``C`` and ``c``.
    init_std : float
        ``C`` and ``c`` start ``N(0, init_std²)``.
    """

    def __init__(self, lin: nn.Linear, n_old: int, partners: Tensor, lr: float, init_std: float) -> None:
        self.lin, self.n_old, self.partners, self.lr = lin, n_old, partners, lr
        k, m, s = lin.out_features - n_old, lin.in_features, partners.numel()
        device = lin.weight.device
        self.C = nn.Parameter(torch.randn(k, s, m, device=device) * init_std)
        self.c = nn.Parameter(torch.randn(k, s, device=device) * init_std)

    @property
    def state_bytes(self) -> int:
        """Bytes of ``C`` with its gradient and Adam state."""
        return BYTES_PER_DENSE_ENTRY * self.C.numel()

    def trainable(self) -> list[nn.Parameter]:
        """Tensors an optimizer must step (``C`` and ``c``)."""
        return [self.C, self.c]

    def effective(self) -> tuple[Tensor, Tensor]:
        """The layer's effective weight ``(n + k, m)`` and bias ``(n + k,)``."""
        return coupled_weights(self.lin.weight, self.lin.bias, self.n_old, self.partners, self.C, self.c)

    def step(self) -> None:
        """Nothing: the optimizer steps ``C`` and ``c``."""

    @torch.no_grad()
    def bake(self) -> None:
        """Fold ``C`` and ``c`` into the layer's weights."""
        w, b = self.effective()
        self.lin.weight.copy_(w)
        self.lin.bias.copy_(b)


class FactoredCoupling:
    """Pairwise transfers from per-row Adam-normalised gradients; no ``C`` is stored.

    The layer's own weight and bias are the effective ones: the caller lets autograd fill
    their ``.grad`` (``∂L/∂W̃`` and ``∂L/∂r̃``) and calls :meth:`step`.

    Parameters
    ----------
    lin : nn.Linear
        The grown layer (``n_old + k`` rows).
    n_old : int
    partners : LongTensor ``(s,)``
    lr : float
        Step size ``η`` of one pair's transfer.
    betas, eps : Adam's constants.
    """

    def __init__(
        self, lin: nn.Linear, n_old: int, partners: Tensor, lr: float,
        betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
    ) -> None:
        self.lin, self.n_old, self.partners, self.lr = lin, n_old, partners, lr
        self.betas, self.eps = betas, eps
        k, m, s = lin.out_features - n_old, lin.in_features, partners.numel()
        device = lin.weight.device
        # Moments of [grad W | grad b] per row: old partners first, then new rows.
        self.exp_avg = torch.zeros(s + k, m + 1, device=device)
        self.exp_avg_sq = torch.zeros(s + k, m + 1, device=device)
        self.steps = 0

    @property
    def state_bytes(self) -> int:
        """Bytes of the per-row moments and the update buffer."""
        return 4 * 3 * self.exp_avg.numel()

    def trainable(self) -> list[nn.Parameter]:
        """Tensors whose gradients :meth:`step` reads (the layer's weight and bias)."""
        return [self.lin.weight, self.lin.bias]

    def effective(self) -> tuple[Tensor, Tensor]:
        """The layer's own weight ``(n + k, m)`` and bias ``(n + k,)``."""
        return self.lin.weight, self.lin.bias

    @torch.no_grad()
    def step(self) -> None:
        """Apply one step of pairwise transfers from the gradients in ``.grad``."""
        w, b = self.lin.weight, self.lin.bias
        if w.grad is None or b.grad is None:
            return
        n = self.n_old
        grad = torch.cat([w.grad, b.grad[:, None]], 1)
        grad = torch.cat([grad[:n][self.partners], grad[n:]])
        beta1, beta2 = self.betas
        self.steps += 1
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        m_hat = self.exp_avg / (1 - beta1**self.steps)
        v_hat = self.exp_avg_sq / (1 - beta2**self.steps)
        u = m_hat / (v_hat.sqrt() + self.eps)
        s = self.partners.numel()
        g_hat, h_hat = u[:s], u[s:]
        k = h_hat.shape[0]
        d_new = self.lr * (g_hat.sum(0) - s * h_hat)
        d_old = -self.lr * (k * g_hat - h_hat.sum(0))
        w[n:] += d_new[:, :-1]
        b[n:] += d_new[:, -1]
        w.index_add_(0, self.partners, d_old[:, :-1])
        b.index_add_(0, self.partners, d_old[:, -1])

    def bake(self) -> None:
        """Nothing to fold: the transfers were applied to the weights directly."""
