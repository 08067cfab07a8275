"""A model with one head per task: any trunk, and Avalanche's own ``MultiHeadClassifier``."""

from __future__ import annotations

from typing import Any

import torch
from avalanche.models import MultiHeadClassifier, MultiTaskModule
from torch import Tensor, nn

from clgrow.discovery import FIXED
from clgrow.sites import as_growable

__all__ = ["TaskHeads", "with_task_heads"]


class TaskHeads(MultiTaskModule):
    """``trunk`` read by one ``Linear`` head per task label (Avalanche's ``MultiHeadClassifier``,
    unmasked: each head has ``classes_per_head`` outputs from the start).

    Avalanche passes task labels to ``forward`` because this is a ``MultiTaskModule``; a head is
    created when a task is first trained (``adaptation`` in training mode: evaluating a task not yet
    trained adds no untrained head, which would count in a parameter budget), at the width the trunk
    has then; a task without a head is answered by head 0. The trunk's last site is read by every
    head: growth appends zero columns to each.

    Parameters
    ----------
    trunk : nn.Module
        Features ``(batch, features)`` from inputs (clgrow's builders with ``num_classes=None``).
    features : int
        What the trunk gives per sample.
    classes_per_head : int
    """

    def __init__(self, trunk: nn.Module, features: int, classes_per_head: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.classifier = MultiHeadClassifier(features, classes_per_head, masking=False)
        self.classifier._auto_adapt = False  # adapted by this module, in training only
        self.max_class_label = int(classes_per_head)  # outputs per sample before any adaptation
        fixed = getattr(trunk, FIXED, ())
        if fixed:
            setattr(self, FIXED, tuple(f"trunk.{p}" for p in fixed))

    def forward(self, x: Tensor, task_labels: Tensor | int | None = None) -> Tensor | dict[int, Tensor]:
        """Logits of each sample's task head; without labels, as Avalanche's ``MultiTaskModule``,
        ``{task: logits}`` of every task trained so far (what LwF distils from)."""
        return super().forward(x, task_labels)

    def adaptation(self, experience: Any) -> None:
        """Record the experience's tasks and, in training, give each new one its head."""
        super().adaptation(experience)
        if self.training:
            self.classifier.adaptation(experience)

    def forward_single_task(self, x: Tensor, task_label: int) -> Tensor:
        """Logits of task ``task_label``'s head (head 0's for a task not trained yet)."""
        task = task_label if str(task_label) in self.classifier.classifiers else 0
        return self.classifier(self.trunk(x), task)


def with_task_heads(trunk: nn.Module, classes_per_head: int, example: Tensor) -> TaskHeads:
    """``trunk`` with one head per task, its growth sites traced on ``example`` (an input batch)."""
    was = trunk.training
    trunk.eval()
    with torch.no_grad():
        features = int(trunk(example).shape[1])
    trunk.train(was)
    model = TaskHeads(trunk, features, classes_per_head)
    as_growable(model, example, torch.zeros(example.shape[0], dtype=torch.long))
    return model


def __getattr__(name: str) -> Any:
    if name in ("MultiHeadGrowableMLP", "MultiHeadGrowableCNN", "MultiHeadGrowableResNet"):
        raise AttributeError(
            f"clgrow.strategies.multihead.{name} was removed in clgrow 0.2 (a checkpoint that holds one cannot "
            "be resumed): give any trunk its task heads with with_task_heads(trunk, classes, example)"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
