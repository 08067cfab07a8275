"""Multiply-adds a run spends, by phase: training, evaluation, growth, probes.

Every forward pass of a watched module (:func:`watch`, or ``counting(counter, model)``; the copies
growth methods make of it, such as SVoD's candidate copy, keep the hook) reports its multiply-adds
to the counter that is active, in the phase that is current. A pass is counted at the widths it
ran at, per sample from PyTorch's FLOP counter on one sample (``Σ in·out`` over an MLP's layers;
a convolution's at every output position), cached per input shape and parameter count. A pass
run with gradients enabled is taken to be
back-propagated, as training and every growth adjustment do: its backward costs twice the forward
but for the first layer's input gradient, which nothing needs (``2·F − batch·in₀·out₀``).
Parameter updates and the growth methods' own bookkeeping (SWE's factored coupling update, SVoD's
vote sort) are not multiply-adds of a layer and are left out.

Example
-------
>>> counter = ComputeCounter()
>>> with counting(counter, model), phase("train"):
...     loss = model(x).sum()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where a pass is counted: the command line reads PHASES without it
    from torch import nn
    from torch.utils.hooks import RemovableHandle

__all__ = [
    "ComputeCounter",
    "counting",
    "watch",
    "count_forward",
    "measure",
    "activate",
    "phase",
    "set_phase",
    "paused",
    "active",
    "PHASES",
]

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
def counting(counter: ComputeCounter, *models: nn.Module) -> Iterator[ComputeCounter]:
    """Within the block, forward passes of watched modules (and of ``models``, watched for the
    block) report to ``counter`` (on this thread)."""
    before = active()
    _STATE.counter = counter
    handles = [watch(m) for m in models]
    try:
        yield counter
    finally:
        _STATE.counter = before
        for h in handles:
            h.remove()


def watch(model: nn.Module) -> RemovableHandle:
    """Count every forward pass of ``model`` with the active counter, until the handle's ``remove()``."""
    return model.register_forward_hook(count_forward)


def count_forward(module: nn.Module, args: Any, out: Any) -> None:
    """A watched module's forward pass (or its copy's: a copy keeps the hook) reports its multiply-adds
    to the active counter (:func:`measure`, cached per input shape and parameter count)."""
    import torch

    counter = active()
    if counter is None or not args or not isinstance(args[0], torch.Tensor) or args[0].dim() == 0:
        return
    x = args[0]
    key = (tuple(x.shape[1:]), sum(p.numel() for p in module.parameters()))
    cache = module.__dict__.setdefault("_clgrow_macs_per_sample", {})
    if key not in cache:
        rest = [r[:1] if isinstance(r, torch.Tensor) and r.dim() else r for r in args[1:]]
        cache[key] = measure(module, x[:1], *rest)
    per_sample, first = cache[key]
    grad = torch.is_grad_enabled() and isinstance(out, torch.Tensor) and out.requires_grad
    counter.record(x.shape[0], per_sample, first, grad)


def measure(module: nn.Module, *args: Any) -> tuple[int, int]:
    """Multiply-adds of ``module(*args)`` per sample (PyTorch's FLOP counter on a batch of one),
    and of the first ``Linear`` or convolution it runs alone (whose input gradient a backward pass
    does not compute). The module runs in eval mode with its hooks set aside: the measurement moves
    no batch-norm statistics and reaches no observer."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from clgrow.surgery import is_producer, weight_of

    first: list[int] = []

    def note(mod: nn.Module, inputs: Any, output: Any) -> None:
        if not first and is_producer(mod) and isinstance(output, torch.Tensor):
            first.append(weight_of(mod).numel() * math.prod(output.shape[2:]))

    saved = [(m, m.training, dict(m._forward_hooks), dict(m._forward_pre_hooks)) for m in module.modules()]
    try:
        for m, _, _, _ in saved:
            m.training = False
            m._forward_hooks.clear()
            m._forward_pre_hooks.clear()
            m.register_forward_hook(note)
        with torch.no_grad(), FlopCounterMode(display=False) as flops, paused():
            module(*args)
    finally:
        for m, training, hooks, pre in saved:
            m.training = training
            m._forward_hooks.clear()
            m._forward_hooks.update(hooks)
            m._forward_pre_hooks.update(pre)
    return flops.get_total_flops() // 2, (first[0] if first else 0)


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
