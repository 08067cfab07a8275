"""A GrowableMLP with one head per task, for task-incremental (task-labelled) streams."""

from __future__ import annotations

from typing import Any

import torch
from avalanche.models import MultiTaskModule
from torch import Tensor, nn

from clgrow import GrowableMLP
from clgrow.model import LinearDict, _replace_linear, default_linear_init

__all__ = ["MultiHeadGrowableMLP"]


class MultiHeadGrowableMLP(GrowableMLP, MultiTaskModule):
    """Shared growable trunk, one ``Linear`` head per task label.

    Avalanche passes task labels to ``forward`` because this is a ``MultiTaskModule``. A head
    is created when a task is first trained (``adaptation``); every head is a consumer of the
    last hidden layer, so growth appends a zero column to each.

    Parameters
    ----------
    in_features, hidden_sizes, backbone, dropout
        As for :class:`~clgrow.GrowableMLP`.
    classes_per_head : int
        Outputs of each head (labels are those of the task's experience).
    """

    heads_per_task = True

    def __init__(
        self,
        in_features: int,
        hidden_sizes: list[int],
        classes_per_head: int,
        backbone: nn.Module | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(in_features, hidden_sizes, classes_per_head, backbone=backbone, dropout=dropout)
        del self.head
        self.classes_per_head = int(classes_per_head)
        self.heads = LinearDict()
        self.add_task(0)

    @property
    def num_classes(self) -> int:
        """Outputs of each head."""
        return self.classes_per_head

    def consumers(self, layer: int) -> list[nn.Linear]:
        """The last hidden layer feeds every head."""
        self._check_layer(layer)
        if layer + 1 < len(self.hidden):
            return [self.hidden[layer + 1]]
        return [self.heads[k] for k in sorted(self.heads, key=int)]

    def add_task(self, task: int) -> None:
        """Create the head of ``task`` if it is new."""
        if str(task) not in self.heads:
            lin = nn.Linear(self.hidden_sizes[-1], self.classes_per_head)
            lin.to(next(self.parameters()).device)
            self.heads[str(task)] = lin

    @torch.no_grad()
    def add_classes(self, n: int) -> None:
        """Grow every head by ``n`` outputs."""
        if n <= 0:
            return
        for head in self.heads.values():
            w, b = default_linear_init(n, head.in_features)
            _replace_linear(
                head, torch.cat([head.weight, w.to(head.weight)]), torch.cat([head.bias, b.to(head.weight)])
            )
        self.classes_per_head += n

    def adaptation(self, experience: Any) -> None:
        """Register the experience's task labels and make their heads (training only)."""
        MultiTaskModule.adaptation(self, experience)
        if self.training:
            for t in experience.task_labels:
                self.add_task(int(t))

    def forward(  # type: ignore[override]  # without labels: every head, as Avalanche's MultiTaskModule
        self, x: Tensor, task_labels: Tensor | int | None = None
    ) -> Tensor | dict[int, Tensor]:
        """Logits of each sample's task head; without labels, as Avalanche's ``MultiTaskModule``,
        ``{task: logits}`` of every head (what LwF distils from)."""
        if task_labels is None:
            h = self.run_trunk(x)
            return {int(t): self._head_for(int(t))(h) for t in sorted(self.heads, key=int)}
        return self.run(x, task_labels)[0]

    def run_trunk(self, x: Tensor) -> Tensor:
        """The last hidden layer's output ``(batch, n)``, every head's input."""
        _, hidden = self.run(x, 0, capture=True)
        return self.dropout(hidden[-1])

    def apply_head(self, h: Tensor, task_labels: Tensor | int | None = None) -> Tensor:
        """Route each sample to its task's head; unseen tasks use head 0."""
        if task_labels is None:
            task_labels = 0
        if isinstance(task_labels, int):
            return self._head_for(task_labels)(h)
        out = h.new_zeros(h.shape[0], self.classes_per_head)
        for t in torch.unique(task_labels).tolist():
            mask = task_labels == t
            out[mask] = self._head_for(int(t))(h[mask])
        return out

    def _head_for(self, task: int) -> nn.Linear:
        return self.heads[str(task)] if str(task) in self.heads else self.heads["0"]
