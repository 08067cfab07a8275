"""Reading growth data: batches from any loader under a budget measured in passes, and
:class:`GrowthContext`, what one growth step works with."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from clgrow.errors import GrowthError

__all__ = ["Batch", "unpack", "iter_passes", "num_batches", "GrowthContext", "eligible_layers", "model_device"]

Batch = tuple[Tensor, Tensor, "Tensor | None"]


def unpack(batch: Any, device: torch.device | None = None) -> Batch:
    """Split a loader item into ``(x, y, task_labels)``.

    Accepts ``(x, y)`` pairs and Avalanche's ``(x, y, t, ...)`` tuples.
    """
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise GrowthError("loader items must be (inputs, targets[, task_labels, ...]) tuples")
    x, y = batch[0], batch[1]
    t = batch[2] if len(batch) > 2 and isinstance(batch[2], Tensor) else None
    if device is not None:
        x, y = x.to(device), y.to(device)
        t = None if t is None else t.to(device)
    return x, y, t


def num_batches(loader: Iterable[Any]) -> int | None:
    """Length of ``loader`` if it has one."""
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None


def iter_passes(loader: Iterable[Any], passes: float) -> Iterator[Any]:
    """Yield batches covering ``passes`` passes over ``loader`` (fractions allowed).

    A fraction ``f`` of a pass is ``ceil(f * len(loader))`` batches, so any positive budget
    sees at least one batch. From an unshuffled ``DataLoader`` (sequential sampler) they are
    spread evenly over the data, so data sorted by class or task is not read from its start
    only; from any other loader they are its first batches (a shuffled loader's first batches
    are already a draw from across the data). Loaders without ``len`` need whole passes.
    """
    if passes < 0 or not math.isfinite(passes):
        raise GrowthError(f"a budget in passes must be a finite number >= 0, got {passes}")
    if passes == 0:
        return
    whole, frac = int(passes), passes - int(passes)
    for _ in range(whole):
        yield from loader
    if frac > 0:
        n = num_batches(loader)
        if n is None:
            raise GrowthError("fractional passes need a loader with a length")
        limit = max(1, math.ceil(frac * n))
        spread = _spread_loader(loader, limit)
        if spread is not None:
            yield from spread
            return
        for i, batch in enumerate(loader):
            if i >= limit:
                break
            yield batch


def _spread_loader(loader: Iterable[Any], limit: int) -> Iterable[Any] | None:
    """``limit`` evenly spaced batches of an unshuffled DataLoader, or ``None`` for other loaders."""
    from torch.utils.data import DataLoader, SequentialSampler

    if type(loader) is not DataLoader or not isinstance(loader.sampler, SequentialSampler):
        return None
    if loader.batch_sampler is None:
        return None
    all_batches = list(loader.batch_sampler)
    n = len(all_batches)
    if limit >= n:
        return None
    picks = [all_batches[(j * n) // limit] for j in range(limit)]
    return DataLoader(
        loader.dataset,
        batch_sampler=picks,
        collate_fn=loader.collate_fn,
        num_workers=loader.num_workers,
        pin_memory=loader.pin_memory,
    )


def check_loader(loader: Iterable[Any]) -> None:
    """Refuse loaders that yield nothing, or only once, before any change is made."""
    if iter(loader) is loader:  # a generator or iterator: the check itself would use up its data
        raise GrowthError(
            f"the growth loader is a one-shot iterator ({type(loader).__name__}): growth reads "
            "its data more than once; pass a DataLoader, a list of batches or another re-iterable"
        )
    n = num_batches(loader)
    if n == 0:
        raise GrowthError("the growth loader is empty: growth needs at least one batch of data")
    if n is None:
        for _ in loader:
            return
        raise GrowthError("the growth loader is empty: growth needs at least one batch of data")


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
