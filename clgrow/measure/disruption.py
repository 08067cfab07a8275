r"""Growth disruption: how much one growth step changes what the model computes on old data.

A growth step that integrates new units should leave the outputs on the experiences already
learned where they were. For a fixed *probe* of samples per seen experience, the outputs are taken
right before the step (:math:`z`) and right after it (:math:`z'`), and compared by

* the accuracy before and after (its drop, in points, is the step's *growth disruption*);
* the mean Kullback-Leibler divergence :math:`\frac1N \sum_x \mathrm{KL}(\mathrm{softmax}(z_x)\,\|\,
  \mathrm{softmax}(z'_x))` in nats (0 when the step preserves the function exactly).

Random growth (zero outgoing weights) and every other function-preserving insertion score 0 on
both. Pure PyTorch: the Avalanche plugin keeps the probes and calls :func:`probe_outputs` and
:func:`output_change` around each step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Probe", "ProbeChange", "probe_outputs", "output_change"]


@dataclass
class Probe:
    """A fixed sample of one experience's data.

    Attributes
    ----------
    experience : int
        The training experience it was drawn from.
    x : Tensor ``(N, ...)``
        Inputs.
    y : Tensor ``(N,)``
        Targets.
    t : Tensor ``(N,)``
        Task labels (all 0 without task labels).
    """

    experience: int
    x: Tensor
    y: Tensor
    t: Tensor


@dataclass
class ProbeChange:
    """What one growth step did to the outputs on one probe.

    Attributes
    ----------
    experience : int
        The probed experience.
    accuracy_before, accuracy_after : float
        Accuracy on the probe right before and right after the step (fractions).
    kl : float
        Mean ``KL(softmax(before) || softmax(after))`` over the probe, in nats.
    """

    experience: int
    accuracy_before: float
    accuracy_after: float
    kl: float

    @property
    def drop(self) -> float:
        """``accuracy_before - accuracy_after`` (positive: the step cost accuracy)."""
        return self.accuracy_before - self.accuracy_after

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


@torch.no_grad()
def probe_outputs(model: nn.Module, probe: Probe, batch_size: int = 1024) -> Tensor:
    """Logits ``(N, C)`` of ``model`` on ``probe`` in evaluation mode (the mode is put back).

    The model is called as ``model(x, t)`` when each task reads its own head
    (``model.heads_per_task``)."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    takes_tasks = bool(getattr(model, "heads_per_task", False))
    try:
        out = []
        for i in range(0, len(probe.y), batch_size):
            x = probe.x[i : i + batch_size].to(device)
            t = probe.t[i : i + batch_size].to(device)
            out.append((model(x, t) if takes_tasks else model(x)).float().cpu())
        return torch.cat(out) if out else torch.empty(0, 0)
    finally:
        for m, mode in modes.items():
            m.training = mode


def output_change(before: Tensor, after: Tensor, y: Tensor, experience: int = 0) -> ProbeChange:
    """Compare logits ``before`` and ``after`` ``(N, C)`` on targets ``y`` ``(N,)``.

    A growth step changes hidden layers only, so the two have the same shape; differing shapes
    are refused.
    """
    if before.shape != after.shape:
        raise ValueError(f"outputs before {tuple(before.shape)} and after {tuple(after.shape)} differ in shape")
    if len(y) == 0:
        return ProbeChange(experience, float("nan"), float("nan"), float("nan"))
    y = y.to(before.device)
    acc_b = float((before.argmax(1) == y).float().mean())
    acc_a = float((after.argmax(1) == y).float().mean())
    logp, logq = torch.log_softmax(before.double(), 1), torch.log_softmax(after.double(), 1)
    kl = float((logp.exp() * (logp - logq)).sum(1).mean().clamp_min(0.0))
    return ProbeChange(experience, acc_b, acc_a, kl)
