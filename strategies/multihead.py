"""Growable models with one head per task, for task-incremental (task-labelled) streams."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from avalanche.models import MultiTaskModule
from torch import Tensor, nn

from clgrow import GrowableCNN, GrowableMLP, GrowableResNet
from clgrow.model import LinearDict, _replace_linear, default_linear_init

__all__ = ["TaskHeads", "MultiHeadGrowableMLP", "MultiHeadGrowableCNN", "MultiHeadGrowableResNet"]

#: ``apply_head``'s task label that returns the head's input itself (every head's input).
_TRUNK = -1


class TaskHeads(MultiTaskModule):
    """One ``Linear`` head per task label in place of a growable model's head (a mixin, listed
    before the model's class).

    Avalanche passes task labels to ``forward`` because this is a ``MultiTaskModule``. A head is
    created when a task is first trained (``adaptation``). Every head reads what the single head
    read: when that is a growth site (the last hidden layer), growth appends zero columns to each.
    """

    heads_per_task = True
    head: nn.Linear
    hidden: Any

    def _make_heads(self, classes_per_head: int) -> None:
        # The growable model's __init__ ran nn.Module's, not MultiTaskModule's (which comes
        # before it in the method order): set what that one sets (a test compares the two).
        self._auto_adapt = True
        self.max_class_label = 0
        self.known_train_tasks_labels: set[int] = set()
        self._head_inputs = self.head.in_features
        del self.head
        self.classes_per_head = int(classes_per_head)
        self.heads = LinearDict()
        self.add_task(0)

    @property
    def num_classes(self) -> int:
        """Outputs of each head."""
        return self.classes_per_head

    def consumers(self, layer: int) -> list[nn.Linear]:
        """A site the head read is read by every head."""
        self._check_layer(layer)
        if not self.reads_out(layer):
            return super().consumers(layer)
        return [self.heads[k] for k in sorted(self.heads, key=int)]

    def add_task(self, task: int) -> None:
        """Create the head of ``task`` if it is new (reading what every head reads now)."""
        if str(task) not in self.heads:
            width = next(iter(self.heads.values())).in_features if len(self.heads) else self._head_inputs
            lin = nn.Linear(width, self.classes_per_head)
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

    def forward(  # without labels: every head, as Avalanche's MultiTaskModule
        self, x: Tensor, task_labels: Tensor | int | None = None
    ) -> Tensor | dict[int, Tensor]:
        """Logits of each sample's task head; without labels, as Avalanche's ``MultiTaskModule``,
        ``{task: logits}`` of every head (what LwF distils from)."""
        if task_labels is None:
            h = self.run_trunk(x)
            return {int(t): self._head_for(int(t))(h) for t in sorted(self.heads, key=int)}
        return self.run(x, task_labels)[0]

    def run_trunk(self, x: Tensor) -> Tensor:
        """What every head reads, ``(batch, features)``."""
        return self.run(x, _TRUNK)[0]

    def apply_head(self, h: Tensor, task_labels: Tensor | int | None = None) -> Tensor:
        """Route each sample to its task's head; unseen tasks use head 0."""
        if task_labels is None:
            task_labels = 0
        if isinstance(task_labels, int):
            return h if task_labels == _TRUNK else self._head_for(task_labels)(h)
        out = h.new_zeros(h.shape[0], self.classes_per_head)
        for t in torch.unique(task_labels).tolist():
            mask = task_labels == t
            out[mask] = self._head_for(int(t))(h[mask])
        return out

    def _head_for(self, task: int) -> nn.Linear:
        return self.heads[str(task)] if str(task) in self.heads else self.heads["0"]


class MultiHeadGrowableMLP(TaskHeads, GrowableMLP):  # type: ignore[misc]  # forward: labels optional, as Avalanche's
    """Shared growable MLP trunk, one ``Linear`` head per task label.

    Parameters
    ----------
    in_features, hidden_sizes, backbone, dropout
        As for :class:`~clgrow.GrowableMLP`.
    classes_per_head : int
        Outputs of each head (labels are those of the task's experience).
    """

    def __init__(
        self,
        in_features: int,
        hidden_sizes: list[int],
        classes_per_head: int,
        backbone: nn.Module | None = None,
        dropout: float = 0.0,
    ) -> None:
        GrowableMLP.__init__(self, in_features, hidden_sizes, classes_per_head, backbone=backbone, dropout=dropout)
        self._make_heads(classes_per_head)


class MultiHeadGrowableCNN(TaskHeads, GrowableCNN):  # type: ignore[misc]  # forward: labels optional, as Avalanche's
    """A :class:`~clgrow.GrowableCNN` with one head per task (arguments as for it, with
    ``classes_per_head`` in place of ``num_classes``)."""

    def __init__(
        self,
        in_shape: Sequence[int],
        channels: Sequence[int | str],
        hidden_sizes: Sequence[int],
        classes_per_head: int,
        **kwargs: Any,
    ) -> None:
        GrowableCNN.__init__(self, in_shape, channels, hidden_sizes, classes_per_head, **kwargs)
        self._make_heads(classes_per_head)


class MultiHeadGrowableResNet(TaskHeads, GrowableResNet):  # type: ignore[misc]  # forward: labels optional, as Avalanche's
    """A :class:`~clgrow.GrowableResNet` with one head per task (arguments as for it, with
    ``classes_per_head`` in place of ``num_classes``)."""

    def __init__(self, in_shape: Sequence[int], classes_per_head: int, **kwargs: Any) -> None:
        GrowableResNet.__init__(self, in_shape, classes_per_head, **kwargs)
        self._make_heads(classes_per_head)
