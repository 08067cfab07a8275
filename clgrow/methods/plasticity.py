"""Plasticity resets at equal size: ReDo and continual backprop (torch only).

Both methods re-initialise hidden units in place instead of adding new ones:

* **ReDo** (Sokar et al., ICML 2023) re-initialises the τ-dormant units of a batch — the same
  τ-dormant rule the inactivity metrics count (:func:`clgrow.measure.inactivity.dormant_mask`).
* **Continual backprop** (CBP; Dohare et al., Nature 2024) keeps a running utility
  ``u ← η·u + (1 − η)·|h|·Σ|w_out|`` and an age per unit, and every step replaces a trickle
  (``ρ`` × the number of mature units) of the lowest-utility mature units.

A reset unit gets fresh incoming weights and bias (the layer's own initialisation, that of
``nn.Linear``) and zero outgoing weights, so the network's function does not depend on its new
incoming weights at the moment of the reset; CBP first folds the unit's mean contribution into the
consumer's bias. The optimizer state (Adam's moments, SGD's momentum) of exactly the reset rows and
columns is cleared. Parameters keep their identity, so no optimizer needs rebuilding.

The Avalanche plugin that schedules these calls is :class:`clgrow.strategies.PlasticityPlugin`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from clgrow import surgery
from clgrow.errors import ConfigError, GrowthError
from clgrow.measure.inactivity import dormant_mask
from clgrow.methods import CBPParams, ReDoParams
from clgrow.params import Configurable
from clgrow.registry import plasticity_methods
from clgrow.sites import Growable, as_growable

__all__ = [
    "PlasticityMethod",
    "ReDo",
    "ContinualBackprop",
    "plasticity_methods",
    "reset_units",
    "clear_optimizer_entries",
    "build_plasticity_method",
    "hidden_activations",
]


@torch.no_grad()
def clear_optimizer_entries(optimizer: torch.optim.Optimizer | None, param: Tensor, index: Tensor, dim: int) -> int:
    """Zero the optimizer state of ``param``'s slices ``index`` along ``dim``.

    Every state tensor of ``param``'s own shape is cleared there (Adam's ``exp_avg``,
    ``exp_avg_sq``, ``max_exp_avg_sq``; SGD's ``momentum_buffer``; RMSprop's ``square_avg``...);
    scalars such as Adam's ``step`` are shared by the whole tensor and kept. Returns the number of
    state tensors touched.
    """
    if optimizer is None or index.numel() == 0:
        return 0
    state = optimizer.state.get(param)
    if not state:
        return 0
    touched = 0
    for value in state.values():
        if isinstance(value, Tensor) and value.shape == param.shape:
            value.index_fill_(dim, index.to(value.device), 0)
            touched += 1
    return touched


@torch.no_grad()
def reset_units(
    model: nn.Module,
    layer: int,
    units: Tensor,
    optimizer: torch.optim.Optimizer | None = None,
    fold_mean: Tensor | None = None,
) -> None:
    """Re-initialise ``units`` of site ``layer`` in place.

    Parameters
    ----------
    model : nn.Module
        A model with growth sites (its last trace serves), or its site view.
    layer : int
    units : LongTensor ``(k,)``
        Indices of the units to reset.
    optimizer : Optimizer, optional
        Its state is cleared for the reset rows of every producer and norm and the reset columns
        of every reader.
    fold_mean : Tensor ``(n,)``, optional
        Mean activation of every unit of the site: each reset unit's mean contribution
        ``V[:, j] · mean_j`` is added to the reader's bias before its column is zeroed (CBP).
    """
    grown = as_growable(model)  # its last trace (clgrow's own builders trace theirs)
    grown.prepare()
    n = grown.hidden_sizes[layer]
    units = units.to(device=grown.members(layer)[0].weight.device, dtype=torch.long)
    if units.numel() == 0:
        return
    if units.min() < 0 or units.max() >= n:
        raise GrowthError(f"reset units of layer {layer} must lie in 0..{n - 1}")
    for r in grown.members(layer):
        w, b = surgery.default_init(units.numel(), r.fan_in)  # a filter's init has the same law
        for t in surgery.reset_out(r.producer, units, {"weight": w, "bias": b}):
            clear_optimizer_entries(optimizer, t, units, 0)
    for norm in grown.norms(layer):  # a fresh channel normalises as a new one does (ReDo for conv layers)
        for t in surgery.reset_out(norm, units):
            if isinstance(t, torch.nn.Parameter):
                clear_optimizer_entries(optimizer, t, units, 0)
    for c in grown.consumers(layer):
        v = c.view(n)  # (p, n, r)
        if fold_mean is not None and c.bias is not None:
            # the mean activation's contribution: a channel's kernel taps (or flattened block) all
            # read about the mean of the channel (border effects of padding aside)
            c.bias.add_(v[:, units].sum(2) @ fold_mean[units].to(c.weight))
        v[:, units] = 0.0
        cols = surgery.unit_columns(units, n, c.weight.shape[1]) if c.weight.dim() == 2 else units
        clear_optimizer_entries(optimizer, c.weight, cols, 1)


class PlasticityMethod(Configurable):
    """Base class: decides which hidden units to reset, from activations of training batches.

    The plugin calls :meth:`at_experience` at the start of an experience with one batch's
    activations, and :meth:`after_step` after every optimizer step (when :attr:`needs_steps`)
    with the activations of the batch just trained on. Both reset units in place and return
    ``{layer: indices reset}``.
    """

    name: str = "resetter"
    #: whether :meth:`after_step` does anything (the plugin then captures training activations)
    needs_steps: bool = False

    def at_experience(
        self,
        model: nn.Module,
        experience: int,
        activations: Sequence[Tensor],
        optimizer: torch.optim.Optimizer | None = None,
    ) -> dict[int, Tensor]:
        """Resets due at the start of training experience ``experience``."""
        return {}

    def wants_probe(self, experience: int) -> bool:
        """Whether :meth:`at_experience` needs a probe batch at ``experience``."""
        return False

    def after_step(
        self,
        model: nn.Module,
        step: int,
        activations: Sequence[Tensor],
        optimizer: torch.optim.Optimizer | None = None,
    ) -> dict[int, Tensor]:
        """Resets due after training step ``step`` (counted within the experience, from 1)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Running state a checkpoint must keep."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""

    def prune_units(self, kept: Mapping[int, Tensor]) -> None:
        """Slice per-unit state to the units a prune kept (``kept[layer]``: their old indices, sorted)."""


def keep_entries(state: Tensor, keep: Tensor) -> Tensor:
    """``state`` ``(s,)`` (per unit, possibly shorter than the layer: units not yet seen at its
    end) sliced to the sorted old indices ``keep`` it covers."""
    return state.index_select(0, keep[keep < state.numel()].to(state.device))


class ReDo(PlasticityMethod):
    """Recycle τ-dormant units (Sokar et al., ICML 2023)."""

    Params = ReDoParams
    tau: float
    every: int | None
    from_experience: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.needs_steps = self.every is not None

    def wants_probe(self, experience: int) -> bool:
        return experience >= self.from_experience

    def dormant(self, activations: Sequence[Tensor]) -> dict[int, Tensor]:
        """``{layer: indices}`` of the τ-dormant units of a batch's post-ReLU activations ``(batch, n)``."""
        return {
            i: torch.nonzero(dormant_mask(h.detach().abs().mean(0), self.tau)).flatten()
            for i, h in enumerate(activations)
        }

    def _reset(
        self, model: nn.Module, activations: Sequence[Tensor], optimizer: torch.optim.Optimizer | None
    ) -> dict[int, Tensor]:
        out = {}
        for layer, units in self.dormant(activations).items():
            if units.numel():
                reset_units(model, layer, units, optimizer)
                out[layer] = units
        return out

    def at_experience(
        self,
        model: nn.Module,
        experience: int,
        activations: Sequence[Tensor],
        optimizer: torch.optim.Optimizer | None = None,
    ) -> dict[int, Tensor]:
        return self._reset(model, activations, optimizer) if self.wants_probe(experience) else {}

    def after_step(
        self,
        model: nn.Module,
        step: int,
        activations: Sequence[Tensor],
        optimizer: torch.optim.Optimizer | None = None,
    ) -> dict[int, Tensor]:
        if self.every is None or step % self.every:
            return {}
        return self._reset(model, activations, optimizer)


class ContinualBackprop(PlasticityMethod):
    """Continual backprop's generate-and-test (Dohare et al., Nature 2024).

    Per hidden unit: a utility ``u ← η·u + (1 − η)·mean|h|·Σ|w_out|`` (over the consumers'
    outgoing weights), a running mean activation and an age in steps. After every step each
    layer accrues ``ρ`` × (units older than ``maturity``) replacements; whole ones replace the
    lowest-utility mature units. Units added by growth start at age 0.
    """

    needs_steps = True

    Params = CBPParams
    replacement_rate: float
    decay: float
    maturity: int

    #: Per-unit state, one tensor ``(n,)`` per layer each: what a checkpoint keeps and a prune slices.
    _PER_UNIT = ("utility", "mean_act", "age")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.utility: list[Tensor] = []
        self.mean_act: list[Tensor] = []
        self.age: list[Tensor] = []
        self.accrued: list[float] = []

    def _sync(self, model: Growable) -> None:
        """Match the state to the model's widths: new layers and units start at zero."""
        dev = model.members(0)[0].weight.device
        for i, n in enumerate(model.hidden_sizes):
            if i == len(self.accrued):
                for name in self._PER_UNIT:
                    getattr(self, name).append(torch.zeros(0, dtype=torch.long if name == "age" else None, device=dev))
                self.accrued.append(0.0)
            extra = n - self.utility[i].numel()
            if extra < 0:
                raise GrowthError(f"continual backprop: layer {i} shrank from {self.utility[i].numel()} to {n} units")
            for name in self._PER_UNIT if extra else ():
                state = getattr(self, name)
                state[i] = torch.cat([state[i].to(dev), state[i].new_zeros(extra, device=dev)])

    def prune_units(self, kept: Mapping[int, Tensor]) -> None:
        for layer, keep in kept.items():
            for name in self._PER_UNIT if layer < len(self.accrued) else ():
                getattr(self, name)[layer] = keep_entries(getattr(self, name)[layer], keep)

    @torch.no_grad()
    def after_step(
        self,
        model: nn.Module,
        step: int,
        activations: Sequence[Tensor],
        optimizer: torch.optim.Optimizer | None = None,
    ) -> dict[int, Tensor]:
        grown = as_growable(model)
        self._sync(grown)
        out: dict[int, Tensor] = {}
        eta = self.decay
        for layer, h in enumerate(activations):
            h = h.detach().float()
            out_w = grown.outgoing(layer)
            self.mean_act[layer].mul_(eta).add_(h.mean(0), alpha=1 - eta)
            self.utility[layer].mul_(eta).add_(h.abs().mean(0) * out_w, alpha=1 - eta)
            self.age[layer] += 1
            mature = torch.nonzero(self.age[layer] > self.maturity).flatten()
            self.accrued[layer] += self.replacement_rate * mature.numel()
            k = min(int(self.accrued[layer]), mature.numel())
            if k == 0:
                continue
            self.accrued[layer] -= k
            units = mature[torch.argsort(self.utility[layer][mature], stable=True)[:k]]
            # an unbiased mean: the running average started at zero when the unit was born
            age = self.age[layer][units].float()
            mean = torch.zeros_like(self.mean_act[layer])
            mean[units] = self.mean_act[layer][units] / (1 - eta**age)
            reset_units(grown, layer, units, optimizer, fold_mean=mean)
            self.utility[layer][units] = 0.0
            self.mean_act[layer][units] = 0.0
            self.age[layer][units] = 0
            out[layer] = units
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            **{name: [t.clone() for t in getattr(self, name)] for name in self._PER_UNIT},
            "accrued": list(self.accrued),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self._PER_UNIT:
            setattr(self, name, [t.clone() for t in state[name]])
        self.accrued = [float(a) for a in state["accrued"]]


def build_plasticity_method(name: str, **kwargs: Any) -> PlasticityMethod | None:
    """The plasticity method ``name`` (``"none"``: ``None``) with its keyword arguments.

    Raises :class:`~clgrow.ConfigError` naming an unknown method or a bad argument.
    """
    if name == "none":
        if kwargs:
            raise ConfigError(f"plasticity_kwargs {sorted(kwargs)} given, but plasticity is 'none'")
        return None
    if name not in plasticity_methods:
        raise ConfigError(f"unknown plasticity method {name!r}; known: none, {', '.join(plasticity_methods)}")
    try:
        return plasticity_methods.build(name, kwargs)
    except ConfigError as err:
        raise ConfigError(f"plasticity_kwargs: {err}") from None


def hidden_activations(model: nn.Module, x: Tensor, task_labels: Tensor | None = None) -> list[Tensor]:
    """Post-ReLU activations ``(batch, n)`` of every hidden layer on ``x``, without gradients."""
    with torch.no_grad():
        return as_growable(model).run(x, task_labels, capture=True)[1]
