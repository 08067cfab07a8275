"""ComputePlugin: the multiply-adds an Avalanche strategy spends, by phase (:mod:`clgrow.compute`)."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from torch import nn

from clgrow import GrowableMLP, GrowthError, compute
from clgrow.compute import ComputeCounter

__all__ = ["ComputePlugin", "find_compute_plugin"]


class ComputePlugin(SupervisedPlugin):
    """Count the multiply-adds of training, evaluation, growth and growth's probes while the
    strategy trains and evaluates, and parameters × training samples.

    Growth and its probes are told apart by :class:`~clgrow.strategies.GrowPlugin`; everything
    else in training counts as training (replay samples included: they are in the batches).
    """

    def __init__(self) -> None:
        super().__init__()
        self.counter = ComputeCounter()
        self._outer: list[ComputeCounter | None] = []
        self._hook: Any = None

    def _start(self, name: str, model: Any = None) -> None:
        self._outer.append(compute.activate(self.counter))
        compute.set_phase(name)
        if isinstance(model, nn.Module) and not isinstance(model, GrowableMLP) and self._hook is None:
            # clgrow's own models count in their forward; any other module through a hook on it
            self._hook = model.register_forward_hook(_count_module)

    def _stop(self) -> None:
        compute.activate(self._outer.pop() if self._outer else None)
        compute.set_phase("train")
        if self._hook is not None and not self._outer:
            self._hook.remove()
            self._hook = None

    def before_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._start("train", strategy.model)

    def after_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._stop()

    def before_eval(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._start("eval", strategy.model)

    def after_eval(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._stop()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_hook"] = None  # a hook handle does not survive pickling (checkpoints)
        return state

    def after_training_iteration(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        params = sum(p.numel() for p in strategy.model.parameters())
        self.counter.param_samples += len(strategy.mb_x) * params
        self.counter.train_samples += len(strategy.mb_x)


def _count_module(module: nn.Module, args: Any, out: Any) -> None:
    """A forward pass of a module clgrow did not build: its multiply-adds per sample from
    PyTorch's FLOP counter on one sample (cached per input shape and parameter count), the first
    site's producer's from its trace when one is known."""
    counter = compute.active()
    if counter is None or not args or not isinstance(args[0], torch.Tensor) or args[0].dim() == 0:
        return
    x = args[0]
    key = (tuple(x.shape[1:]), sum(p.numel() for p in module.parameters()))
    cache = module.__dict__.setdefault("_clgrow_macs_per_sample", {})
    if key not in cache:
        from torch.utils.flop_counter import FlopCounterMode

        from clgrow.sites import as_growable, known_sites

        # in eval mode with its hooks set aside: the measurement must not move batch-norm
        # statistics or reach observers (the inactivity metric)
        saved = [(m, m.training, dict(m._forward_hooks), dict(m._forward_pre_hooks)) for m in module.modules()]
        rest = [r[:1] if isinstance(r, torch.Tensor) and r.dim() else r for r in args[1:]]
        try:
            for m, _, _, _ in saved:
                m.training = False
                m._forward_hooks.clear()
                m._forward_pre_hooks.clear()
            with torch.no_grad(), FlopCounterMode(display=False) as flops, compute.paused():
                module(x[:1], *rest)
            if known_sites(module) is None:  # the first site's share, from a trace of the same sample
                with compute.paused(), contextlib.suppress(GrowthError):
                    as_growable(module, x[:1], rest[0] if rest else None)
        finally:
            for m, training, hooks, pre in saved:
                m.training = training
                m._forward_hooks.update(hooks)
                m._forward_pre_hooks.update(pre)
        found = known_sites(module)
        first = as_growable(module).macs_per_sample()[1] if found is not None and found.sites else 0
        cache[key] = (flops.get_total_flops() // 2, first)
    per_sample, first = cache[key]
    grad = torch.is_grad_enabled() and isinstance(out, torch.Tensor) and out.requires_grad
    counter.record(x.shape[0], per_sample, first, grad)


def find_compute_plugin(strategy: Any) -> ComputePlugin | None:
    """The strategy's ComputePlugin, if it has one."""
    return next((p for p in strategy.plugins if isinstance(p, ComputePlugin)), None)
