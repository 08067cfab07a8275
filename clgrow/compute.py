"""Multiply-adds a run spends, by phase: training, evaluation, growth, probes.

Every forward pass of a :class:`~clgrow.GrowableMLP` (the model, and the copies growth methods
make, such as SVoD's candidate copy) reports its multiply-adds to the counter that is active, in
the phase that is current. A pass is counted from the layer shapes it ran at: ``batch · Σ in·out``
over the hidden layers and the head, plus a fixed backbone's multiply-adds per sample (measured
once with PyTorch's FLOP counter). A pass run with gradients enabled is taken to be
back-propagated, as training and every growth adjustment do: its backward costs twice the forward
but for the first layer's input gradient, which nothing needs (``2·F − batch·in₀·out₀``).
Parameter updates and the growth methods' own bookkeeping (SWE's factored coupling update, SVoD's
vote sort) are not multiply-adds of a layer and are left out.

Example
-------
>>> counter = ComputeCounter()
>>> with counting(counter), phase("train"):
...     loss = model(x).sum()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["ComputeCounter", "counting", "activate", "phase", "set_phase", "paused", "active", "PHASES"]

#: The phases a run's multiply-adds are split into.
PHASES = ("train", "eval", "growth", "probe")

_STATE = threading.local()


@dataclass
class ComputeCounter:
    """Multiply-adds per phase (forward and backward apart) and parameters × training samples.

    Attributes
    ----------
    forward, backward : dict[str, int]
        Multiply-adds of forward and backward passes per phase.
    param_samples : int
        Parameters of the model times the samples it trained on, summed over training steps.
    train_samples : int
        Samples trained on (replayed ones included), summed over training steps.
    """

    forward: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PHASES, 0))
    backward: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PHASES, 0))
    param_samples: int = 0
    train_samples: int = 0

    def record(self, batch: int, macs_per_sample: int, first_layer: int, grad: bool) -> None:
        """A forward pass of ``batch`` samples costing ``macs_per_sample`` each; with ``grad``, its
        backward too (``first_layer``: the first layer's multiply-adds per sample)."""
        name = getattr(_STATE, "phase", "train")
        fwd = batch * macs_per_sample
        self.forward[name] = self.forward.get(name, 0) + fwd
        if grad:
            self.backward[name] = self.backward.get(name, 0) + 2 * fwd - batch * first_layer

    def total(self, name: str) -> int:
        """Forward plus backward multiply-adds of phase ``name``."""
        return self.forward.get(name, 0) + self.backward.get(name, 0)

    def to_dict(self) -> dict[str, int]:
        """``{phase}_macs`` for every phase, and ``param_samples`` (what ``summary.json`` records)."""
        out = {f"{name}_macs": self.total(name) for name in PHASES}
        out["param_samples"] = self.param_samples
        out["train_samples"] = self.train_samples
        return out


def active() -> ComputeCounter | None:
    """The counter passes report to (``None``: nothing is counted)."""
    return getattr(_STATE, "counter", None)


def activate(counter: ComputeCounter | None) -> ComputeCounter | None:
    """Make ``counter`` the active one (for callbacks that start and stop counting in two
    different calls); returns the one it replaces."""
    before = active()
    _STATE.counter = counter
    return before


@contextlib.contextmanager
def counting(counter: ComputeCounter) -> Iterator[ComputeCounter]:
    """Within the block, forward passes report to ``counter`` (on this thread)."""
    before = active()
    _STATE.counter = counter
    try:
        yield counter
    finally:
        _STATE.counter = before


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Within the block, passes count as phase ``name`` (one of :data:`PHASES`)."""
    if name not in PHASES:
        raise ValueError(f"unknown phase {name!r}; known: {', '.join(PHASES)}")
    before = getattr(_STATE, "phase", "train")
    _STATE.phase = name
    try:
        yield
    finally:
        _STATE.phase = before


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Within the block nothing is counted (a measurement of the counter's own)."""
    before = active()
    _STATE.counter = None
    try:
        yield
    finally:
        _STATE.counter = before


def set_phase(name: str) -> None:
    """Make ``name`` the current phase until the next change (for callbacks that open and close a
    phase in two different calls, as a strategy's ``before_eval``/``after_eval``)."""
    if name not in PHASES:
        raise ValueError(f"unknown phase {name!r}; known: {', '.join(PHASES)}")
    _STATE.phase = name
