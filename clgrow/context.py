"""GrowthContext: what one growth step works with, and its one helper for budgeted data passes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from clgrow.data import Batch, iter_passes, unpack
from clgrow.errors import GrowthError

__all__ = ["GrowthContext", "eligible_layers", "model_device"]

LossFn = Callable[[Tensor, Tensor], Tensor]


def model_device(model: Any) -> torch.device:
    """Device of the model's (a module's, or a site view's) first parameter (CPU without one)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def eligible_layers(num_layers: int, layers: Sequence[int] | None) -> list[int]:
    """Hidden layers allowed to grow: all by default, else ``layers`` validated and de-duplicated."""
    if layers is None:
        return list(range(num_layers))
    out: list[int] = []
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < num_layers:
            raise GrowthError(f"unknown hidden layer {layer!r}: this model has layers 0..{num_layers - 1}")
        if layer not in out:
            out.append(layer)
    if not out:
        raise GrowthError("layers is empty: name at least one hidden layer to grow")
    return out


@dataclass
class GrowthContext:
    """One growth step's data, loss, device, eligible layers and cohort.

    Attributes
    ----------
    loader : iterable of ``(x, y[, task_labels])`` batches, optional
        Growth data (``None`` for data-free methods).
    loss_fn : callable, optional
        ``loss_fn(logits, targets)``.
    layers : list of int
        Eligible hidden layers.
    cohort : int
        Growth-step number recorded for the new units.
    device : torch.device
        Where batches are moved (the model's device).
    new_task : bool
        The growth data is a new task and what the model learned before must be kept (a
        continual-learning stream at a new experience), not more of the data it learns.
    rehearsal : bool
        At a new task, the growth data also holds samples of earlier tasks (replay, cumulative
        training): what the strategy itself rehearses them with.
    """

    loader: Iterable[Any] | None
    loss_fn: LossFn | None
    layers: list[int]
    cohort: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    new_task: bool = False
    rehearsal: bool = False

    def batches(self, passes: float, who: str = "this method") -> Iterator[Batch]:
        """``(x, y, task_labels)`` on ``device`` for ``passes`` passes over the growth data.

        A fraction of a pass is drawn from across the data (see :func:`clgrow.iter_passes`).
        Missing data or loss is refused here, at the call, not at the first batch.
        """
        self.require_data(who)
        return (unpack(batch, self.device) for batch in iter_passes(self.loader, passes))  # type: ignore[arg-type]

    def loss(self, who: str = "this method") -> LossFn:
        """The loss function, refusing a step without growth data or loss (see :meth:`require_data`)."""
        self.require_data(who)
        assert self.loss_fn is not None
        return self.loss_fn

    def require_data(self, who: str = "this method") -> None:
        """Refuse a step that needs data when no loader or loss was given."""
        if self.loader is None or self.loss_fn is None:
            raise GrowthError(f"{who} needs growth data (a loader) and a loss function")
