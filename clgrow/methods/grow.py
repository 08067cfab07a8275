"""One growth step: a distributor allots ``K`` units, an extender inserts them."""

from __future__ import annotations

import inspect
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from clgrow import methods as _methods  # noqa: F401  (registers every built-in method)
from clgrow.data import LossFn, check_loader, eligible_layers
from clgrow.errors import GrowthError
from clgrow.methods.distributor import Distributor, check_allocation, distributors
from clgrow.methods.extender import Extender, extenders
from clgrow.sites import Growable, growable_from_loader

__all__ = ["GrowthReport", "grow"]


@dataclass
class GrowthReport:
    """What one growth step did.

    Attributes
    ----------
    allocation : dict[int, int]
        Units added per eligible hidden layer (sums to ``K``).
    new_units : dict[int, Tensor]
        Indices of the added units per layer (layers that received none are absent).
    seconds : dict[str, float]
        ``distributor``, ``extender`` and ``total`` wall-clock time.
    cohort : int
        Growth-step number recorded for the new units (0 when nothing was added).
    hidden_sizes_before, hidden_sizes_after : list[int]
    extender, distributor : str
        ``repr`` of the methods used.
    info : dict
        Method-specific details (e.g. SWE's coupling size per layer).
    """

    allocation: dict[int, int]
    new_units: dict[int, Tensor]
    seconds: dict[str, float]
    cohort: int
    hidden_sizes_before: list[int]
    hidden_sizes_after: list[int]
    extender: str = ""
    distributor: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def added(self) -> int:
        """Total number of units added."""
        return sum(self.allocation.values())


def _validate_k(k: Any) -> int:
    if isinstance(k, bool) or (not isinstance(k, int) and not (hasattr(k, "__index__"))):
        raise GrowthError(f"the number of new units must be an integer, got {k!r}")
    k = int(k)
    if k < 0:
        raise GrowthError(f"the number of new units must be >= 0, got {k}")
    return k


def room_under_cap(sizes: Sequence[int], layers: Sequence[int], cap: int) -> dict[int, int]:
    """Units each of ``layers`` can still take before reaching width ``cap``."""
    return {i: max(0, cap - sizes[i]) for i in layers}


def cap_allocation(allocation: dict[int, int], sizes: Sequence[int], cap: int) -> dict[int, int]:
    """Move units allotted beyond ``cap`` to the layers with the most room (ties: earliest)."""
    out = {i: min(v, max(0, cap - sizes[i])) for i, v in allocation.items()}
    surplus = sum(allocation.values()) - sum(out.values())
    while surplus > 0:
        best = max(out, key=lambda i: (cap - sizes[i] - out[i], -i))
        if cap - sizes[best] - out[best] <= 0:
            raise GrowthError(f"no room left under max_hidden_size={cap} for {surplus} more units")
        out[best] += 1
        surplus -= 1
    return out


def grow(
    model: nn.Module,
    k: int,
    loader: Iterable[Any],
    extender: Extender | str = "swe",
    distributor: Distributor | str = "svod",
    loss_fn: LossFn | None = None,
    *,
    layers: Sequence[int] | None = None,
    max_hidden_size: int | None = None,
    new_task: bool = False,
    rehearsal: bool = False,
) -> GrowthReport:
    """Grow ``model`` in place by ``k`` hidden units.

    Parameters
    ----------
    model : nn.Module
        Any module with growth sites (see :func:`clgrow.discovery.find_sites`), clgrow's own builders'
        included: it grows in place.
    k : int
        Units to add across the hidden layers (``>= 0``).
    loader : iterable of ``(x, y[, task_labels])`` batches
        Growth data (the new experience's training data in continual learning).
    extender, distributor : object or registry name
    loss_fn : callable, optional
        ``loss_fn(logits, targets)``; cross-entropy by default.
    layers : sequence of int, optional
        Hidden layers allowed to grow (default: all).
    max_hidden_size : int, optional
        No hidden layer grows beyond this width: units a distributor allots past the cap go
        to the eligible layers with the most room left.
    new_task : bool
        The growth data is a task the model has not learned, and what it learned before must be
        kept (``GrowPlugin`` sets it at a new experience). Extenders that adjust old weights
        (SWE with its ``auto`` settings) then leave what old tasks rely on where it was.
    rehearsal : bool
        With ``new_task``: ``loader`` also holds samples of the earlier tasks (replay), so
        training on it is the strategy's own rehearsal (``GrowPlugin`` sets it when the
        strategy's data outnumber the new experience's).

    Returns
    -------
    GrowthReport

    Raises
    ------
    GrowthError
        On invalid input or a failed step; the model is then left bit-identical to before.
    """
    k = _validate_k(k)
    grown = growable_from_loader(model, loader)
    eligible = eligible_layers(grown.num_hidden_layers, layers)
    try:
        ext = extenders.build(extender)
        dist = distributors.build(distributor)
    except KeyError as err:
        raise GrowthError(str(err.args[0])) from None
    if not isinstance(ext, Extender):
        raise GrowthError(f"extender must be an Extender or a registered name, got {type(ext).__name__}")
    if not isinstance(dist, Distributor):
        raise GrowthError(f"distributor must be a Distributor or a registered name, got {type(dist).__name__}")
    loss_fn = nn.CrossEntropyLoss() if loss_fn is None else loss_fn
    before = grown.hidden_sizes
    if k == 0:
        zero = {"distributor": 0.0, "extender": 0.0, "total": 0.0}
        return GrowthReport({i: 0 for i in eligible}, {}, zero, 0, before, before, repr(ext), repr(dist))
    if max_hidden_size is not None:
        room = sum(room_under_cap(before, eligible, max_hidden_size).values())
        if room < k:
            raise GrowthError(
                f"cannot add {k} units: max_hidden_size={max_hidden_size} leaves room for {room} in layers {eligible}"
            )
    check_loader(loader)
    check_memory(grown, k, eligible)
    cohort = int(grown.growth_steps) + 1
    snap = grown.snapshot()
    t0 = time.perf_counter()
    try:
        grown.prepare()  # biases and cohort buffers, undone on failure
        # checked again here: a subclass may override allocate() itself rather than _allocate(),
        # with or without the new_task argument
        extra = {"new_task": bool(new_task)} if "new_task" in inspect.signature(dist.allocate).parameters else {}
        allocation = check_allocation(dist, dist.allocate(grown, k, loader, loss_fn, eligible, **extra), k, eligible)
        if max_hidden_size is not None:
            allocation = cap_allocation(allocation, before, max_hidden_size)
        t1 = time.perf_counter()
        new_units = ext.extend(
            grown, allocation, loader, loss_fn, cohort, new_task=bool(new_task), rehearsal=bool(new_task and rehearsal)
        )
        t2 = time.perf_counter()
        after = grown.hidden_sizes
        added = {i: after[i] - before[i] for i in range(len(before))}
        if any(added[i] != allocation.get(i, 0) for i in added):
            # an extender that adds other than what it was given would be recorded as growth it
            # did not do (a third party's that adds nothing would read "grew K units")
            raise GrowthError(
                f"{type(ext).__name__} was to add {dict(allocation)} units per layer and added "
                f"{ {i: a for i, a in added.items() if a or allocation.get(i, 0)} }; the model was left unchanged"
            )
        grown.growth_steps.fill_(cohort)
    except BaseException as err:
        grown.restore(snap)
        if isinstance(err, (GrowthError, KeyboardInterrupt)):
            raise
        raise GrowthError(f"growth step failed ({type(err).__name__}: {err}); the model was left unchanged") from err
    return GrowthReport(
        allocation=dict(allocation),
        new_units=new_units,
        seconds={"distributor": t1 - t0, "extender": t2 - t1, "total": t2 - t0},
        cohort=cohort,
        hidden_sizes_before=before,
        hidden_sizes_after=grown.hidden_sizes,
        extender=repr(ext),
        distributor=repr(dist),
        info={"extender": dict(ext.info), "distributor": dict(dist.info)},
    )


def unit_params(model: Growable, layer: int) -> int:
    """Parameters one more unit of ``layer`` costs: its incoming rows and biases, its batch-norm
    pairs and its slice of every reader."""
    n = model.hidden_sizes[layer]
    rows = sum(r.fan_in + 1 for r in model.members(layer))
    return rows + 2 * len(model.norms(layer)) + sum(c.weight.numel() // n for c in model.consumers(layer))


def unit_costs(model: Growable, layers: Sequence[int]) -> tuple[int, int]:
    """``(c, r)``: the most parameters one new unit of ``layers`` adds (:func:`unit_params`), and
    the most one pair of new units adds where one of ``layers`` reads another (the weights between
    them). ``s_i`` units per layer then add at most ``k·c + r·k²/4`` for ``k = Σ s_i``."""
    c = max((unit_params(model, i) for i in layers), default=0)
    r = 0
    for i in layers:
        for reader in model.consumers(i):
            if reader.site is not None and reader.site in layers:
                r = max(r, int(reader.view(model.hidden_sizes[i]).shape[2]))
    return c, r


#: What one added parameter holds during a growth step at most: the tensor, its gradient, the
#: extender's and distributor's working copies and an optimizer's two moments.
COPIES_PER_PARAM = 6


def _free_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(model: Growable, k: int, layers: Sequence[int]) -> None:
    """Refuse, before anything is allocated, ``k`` units that could not fit in the memory of the
    model's device however they are split among ``layers`` (:data:`COPIES_PER_PARAM` copies of
    every added parameter)."""
    p = next(iter(model.parameters()), None)
    if p is None or not layers:
        return
    c, r = unit_costs(model, layers)
    added = k * c + math.ceil(r * k * k / 4)
    need = added * p.element_size() * COPIES_PER_PARAM
    free = _free_bytes(p.device)
    if free is not None and need > free:
        raise GrowthError(
            f"cannot add {k} units: up to {added:,} parameters ({need / 2**30:,.1f} GiB with gradients, "
            f"working copies and optimizer state) and {p.device} has {free / 2**30:,.1f} GiB free; grow fewer "
            "units per step; the model was left unchanged"
        )
