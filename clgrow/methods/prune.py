r"""Remove hidden units: the inverse of growth's insertion.

A unit leaves with its incoming row and bias, its column in every consumer and its cohort entry
(a channel: its filter, batch-norm channel and every consumer's slice); the units that stay keep
their order. :func:`select_units` names which units leave, :func:`prune` removes them in one step
that either completes or leaves the model bit-identical, and slices an optimizer's state to the
units that stay.

Selectors (:data:`SELECTORS`): ``dead``, ``dormant`` (τ-dormant as the inactivity metrics count
it), ``utility`` (continual backprop's ``mean|h_i| · Σ|V[:, i]|``), ``norm`` (outgoing-weight
norm, no data). With a ``count`` every selector takes the lowest scores; without one, ``dead``
and ``dormant`` take every unit under their threshold.

Methods (:data:`METHODS`): ``drop`` removes (exact for units dead on the data); ``swe`` runs
SWE's transfer backwards: each leaving unit's *outgoing* weight flows into the staying units'
by the ridge regression of the leaving activations on the staying ones,
:math:`\hat V_{:,S} = V_{:,S} + V_{:,L} A`, :math:`A = \Sigma_{LS}(\Sigma_{SS} + \lambda I)^{-1}`,
the limit of SWE's Adam steps solved exactly; incoming rows do not move, so what every staying
unit computes is unchanged. Derivation: docs/growth.md ("How the methods work").
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from clgrow.data import model_device, unpack
from clgrow.errors import GrowthError
from clgrow.measure.inactivity import accumulate_activity, dormant_mask
from clgrow.methods import PRUNE_METHODS, PRUNE_SELECTORS
from clgrow.sites import Growable, GrowableModule, as_growable, growable_from_loader
from clgrow.surgery import unit_columns

__all__ = ["PruneReport", "SELECTORS", "METHODS", "select_units", "prune", "slice_by"]

#: How :func:`select_units` chooses units, and how :func:`prune` removes them (declared, no torch).
SELECTORS, METHODS = PRUNE_SELECTORS, PRUNE_METHODS


@dataclass
class PruneReport:
    """What one prune step did.

    Attributes
    ----------
    removed : dict[int, Tensor]
        Indices (in the layer as it was) of the units removed, per hidden layer.
    seconds : float
    hidden_sizes_before, hidden_sizes_after : list[int]
    info : dict
        ``swe``: ``kept`` per layer, the share of the leaving units' second moment that the
        transfer reproduces from the staying ones (1: nothing lost).
    method : str
    function_change : float or None
    """

    removed: dict[int, Tensor]
    seconds: float
    hidden_sizes_before: list[int]
    hidden_sizes_after: list[int]
    info: dict[str, Any] = field(default_factory=dict)
    method: str = "drop"
    #: ``‖f_after − f_before‖ / ‖f_before‖`` of the outputs on the data given (``None`` without data).
    function_change: float | None = None
    #: Per parameter name, the ``(dim, kept indices)`` its tensors were sliced by (what optimizer
    #: and regulariser state of the same parameter must be sliced by too).
    slices: dict[str, list[tuple[int, Tensor]]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Units removed in all."""
        return sum(int(v.numel()) for v in self.removed.values())

    @property
    def kept(self) -> dict[int, Tensor]:
        """Per pruned layer, the old indices of the units that stayed (sorted): what per-unit state
        elsewhere (resets' ages and utilities, labels) must be sliced to."""
        return {layer: _staying(self.hidden_sizes_before[layer], idx) for layer, idx in self.removed.items()}


def _staying(n: int, leaving: Tensor) -> Tensor:
    """The sorted indices of ``n`` units that are not in ``leaving``."""
    mask = torch.ones(n, dtype=torch.bool)
    mask[leaving.cpu()] = False
    return torch.nonzero(mask).flatten()


def _indices(idx: Any, layer: int) -> Tensor:
    """Unit indices ``(k,)`` as given: integers only (``1.5`` or ``True`` is refused, not cut)."""
    t = torch.as_tensor(idx).flatten().cpu()
    if t.numel() and (t.dtype == torch.bool or t.is_floating_point() or t.is_complex()):
        raise GrowthError(f"prune: layer {layer}'s indices must be integers, got {t.tolist()}")
    return t.to(torch.long)


def _finite_batches(data: Iterable[Any], where: str) -> list[Any]:
    """The data as a list of batches, refused when an input holds NaN or an infinity (every unit
    would read as dead, and a transfer fitted on it would write NaN into the weights)."""
    batches = list(data)
    for b, batch in enumerate(batches):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if isinstance(x, Tensor) and x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise GrowthError(f"{where}: batch {b} of the data holds NaN or infinite values")
    return batches


def _growable(model: nn.Module, data: Iterable[Any] | None) -> GrowableModule:
    """``model`` through its sites (its last trace, or one on ``data``'s first batch)."""
    if data is not None:
        return growable_from_loader(model, data if isinstance(data, list) else list(data))
    return as_growable(model)


def select_units(
    model: nn.Module,
    how: str,
    data: Iterable[Any] | None = None,
    *,
    tau: float = 0.025,
    count: Mapping[int, int] | None = None,
) -> dict[int, Tensor]:
    """The units of every hidden layer that ``how`` chooses.

    Parameters
    ----------
    how : {"dead", "dormant", "utility", "norm"}
        ``dead``: zero on every sample of ``data``; ``dormant``: τ-dormant on ``data`` (score: the
        dormancy score ``s_i``); ``utility``: continual backprop's contribution utility
        ``mean|h_i| · Σ|V[:, i]|`` on ``data``; ``norm``: the outgoing-weight norm (no data).
    data : iterable of batches, optional
        Needed by every selector but ``norm``.
    tau : float
        ``dormant``'s threshold.
    count : mapping layer -> int, optional
        Take the ``count[layer]`` units of lowest score in each named layer (``dead``: of the dead
        units only, so possibly fewer). Required by ``utility`` and ``norm``; without it ``dead``
        and ``dormant`` take every unit under their threshold.

    Returns
    -------
    dict[int, Tensor]
        Sorted unit indices per layer (layers with none are absent).
    """
    if how not in SELECTORS:
        raise GrowthError(f"unknown selector {how!r}; known: {', '.join(SELECTORS)}")
    if not (isinstance(tau, float | int) and not isinstance(tau, bool) and math.isfinite(tau) and tau >= 0):
        raise GrowthError(f"select_units: tau must be a finite number >= 0, got {tau!r}")
    if data is not None and how != "norm":
        data = _finite_batches(data, "select_units")
    grown = _growable(model, data)
    if count is None and how in ("utility", "norm"):
        raise GrowthError(f"select_units({how!r}) ranks units: it needs count, {{layer: units}}")
    for layer, c in (count or {}).items():
        grown.check_layer(layer)
        if not (isinstance(c, int) and 0 <= c <= grown.hidden_sizes[layer]):
            raise GrowthError(
                f"select_units: count for layer {layer} must be 0..{grown.hidden_sizes[layer]}, got {c!r}"
            )
    scores: dict[int, Tensor] = {}
    eligible: dict[int, Tensor] = {}
    if how == "norm":
        scores = {layer: grown.outgoing(layer, 2).cpu() for layer in range(grown.num_hidden_layers)}
    else:
        if data is None:
            raise GrowthError(f"select_units({how!r}) needs data to measure activity on")
        try:
            acc = accumulate_activity(grown, data)
        except GrowthError:
            raise GrowthError(
                "select_units: the data is empty: choosing units by activity needs at least one sample"
            ) from None
        for layer in range(grown.num_hidden_layers):
            abs_sum, nonzero = acc.abs_sum[layer], acc.nonzero[layer]
            assert abs_sum is not None and nonzero is not None
            mean = (abs_sum / acc.samples).cpu()
            if how == "dead":
                scores[layer], eligible[layer] = mean, ~nonzero.cpu()
            elif how == "dormant":
                layer_mean = mean.mean()
                scores[layer] = mean / layer_mean if layer_mean > 0 else torch.zeros_like(mean)
                eligible[layer] = dormant_mask(mean, tau).cpu()
            else:
                scores[layer] = mean * grown.outgoing(layer).cpu()
    out: dict[int, Tensor] = {}
    for layer, score in scores.items():
        ok = eligible.get(layer, torch.ones_like(score, dtype=torch.bool))
        if count is None:
            idx = torch.nonzero(ok).flatten()
        elif layer in count:
            ok = ok if how == "dead" else torch.ones_like(ok)
            ranked = torch.argsort(torch.where(ok, score, torch.full_like(score, torch.inf)), stable=True)
            idx = ranked[: min(count[layer], int(ok.sum()))]
        else:
            continue
        if idx.numel():
            out[layer] = torch.sort(idx).values
    return out


def slice_by(t: Tensor, cuts: list[tuple[int, Tensor]]) -> Tensor:
    """``t`` with each ``(dim, kept indices)`` of :attr:`PruneReport.slices` applied in turn."""
    for dim, keep in cuts:
        t = t.index_select(dim, keep.to(t.device))
    return t


def _consumer_rows(x: Tensor, n: int) -> Tensor:
    """A consumer's input as one row of ``n`` unit activations per sample (and per position)."""
    if x.dim() == 4:  # a convolution reads (batch, n, H, W)
        return x.permute(0, 2, 3, 1).reshape(-1, n)
    return x.reshape(x.shape[0], n, -1).transpose(1, 2).reshape(-1, n)  # (batch, n·r), channel-major


@torch.no_grad()
def _moments(
    model: Growable, layers: list[int], data: Iterable[Any]
) -> tuple[dict[int, tuple[Tensor, Tensor, int]], Tensor]:
    """Per layer of ``layers``, the sum and Gram matrix ``(n,)``, ``(n, n)`` (float64) of what its
    consumers read and the row count, all from one pass (in evaluation mode, put back after); and
    the model's outputs on the data (concatenated, on the CPU). With no layers: the outputs alone."""
    acc: dict[int, list[Any]] = {}
    handles = []
    for layer in layers:
        n = model.hidden_sizes[layer]
        acc[layer] = [torch.zeros(n, dtype=torch.float64), torch.zeros(n, n, dtype=torch.float64), 0]

        def hook(_mod: torch.nn.Module, args: tuple[Tensor, ...], layer: int = layer, n: int = n) -> None:
            u = _consumer_rows(args[0].detach(), n).double().cpu()
            acc[layer][0] += u.sum(0)
            acc[layer][1] += u.T @ u
            acc[layer][2] += u.shape[0]

        handles += [c.module.register_forward_pre_hook(hook) for c in model.consumers(layer)]
    device = model_device(model)
    was_training = model.training
    model.eval()
    outs = []
    try:
        for batch in data:
            x, _, t = unpack(batch, device)
            outs.append(model.run(x, t)[0].cpu())
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    stats = {layer: (v[0], v[1], int(v[2])) for layer, v in acc.items()}
    return stats, torch.cat(outs) if outs else torch.zeros(0)


@torch.no_grad()
def _transfer(
    model: Growable, layer: int, leaving: Tensor, stay: Tensor, moments: tuple[Tensor, Tensor, int], ridge: float
) -> float:
    """SWE's reverse transfer (module docstring): fold the leaving units' outgoing contribution
    into the staying units' slices and the consumers' biases. Returns the share of the leaving
    units' second moment reproduced."""
    n = model.hidden_sizes[layer]
    s, g, rows = moments
    if rows == 0:
        raise GrowthError("prune(method='swe'): the data is empty: the transfer needs at least one sample")
    consumers = model.consumers(layer)
    padded = any(c.kind == "conv" and any(p != 0 for p in getattr(c.module, "padding", (0,))) for c in consumers)
    centred = all(c.bias is not None for c in consumers) and not padded
    mu = s / rows
    cov = g / rows - (torch.outer(mu, mu) if centred else 0)
    css = cov[stay][:, stay]
    lam = ridge * float(css.diagonal().mean().clamp_min(1e-12)) + 1e-12
    a = torch.linalg.solve(css + lam * torch.eye(len(stay), dtype=css.dtype), cov[stay][:, leaving]).T  # (|L|, |S|)
    a0 = mu[leaving] - a @ mu[stay] if centred else torch.zeros(len(leaving), dtype=torch.float64)
    for c in consumers:
        v = c.view(n)
        out = v[:, leaving, :].double()
        v[:, stay, :] += torch.einsum("js,pjr->psr", a.to(out.device), out).to(v.dtype)
        if centred:
            assert c.bias is not None
            c.bias.add_(torch.einsum("j,pjr->p", a0.to(out.device), out).to(c.bias.dtype))
    # the share of the leaving units' second moment E|u_L|² that A u_S + a reproduces
    csl = cov[stay][:, leaving]
    resid = float(cov[leaving][:, leaving].trace() - 2 * (a @ csl).trace() + (a @ css @ a.T).trace())
    total = float((g[leaving][:, leaving] / rows).trace())
    return 1.0 - max(0.0, resid) / total if total > 0 else 1.0


def prune(
    model: nn.Module,
    units: Mapping[int, Tensor | list[int]],
    *,
    method: str = "drop",
    data: Iterable[Any] | None = None,
    ridge: float = 1e-3,
    measure: bool = True,
    optimizer: torch.optim.Optimizer | None = None,
    min_units: int = 1,
) -> PruneReport:
    """Remove ``units`` (per hidden layer, indices as the layer is now) in one step.

    Parameters
    ----------
    units : mapping layer -> indices
        What leaves, e.g. :func:`select_units`'s answer.
    method : {"drop", "swe"}
        Remove, or first move the leaving units' contribution into the staying ones (module
        docstring).
    data : iterable of batches, optional
        ``swe``'s data (a list, iterated once, plus once more to measure); with ``drop``,
        optional: it then measures :attr:`PruneReport.function_change`.
    ridge : float
        ``swe``'s regularisation, relative to the staying units' mean variance.
    measure : bool
        With data, measure :attr:`PruneReport.function_change` (one more pass over the data; a
        caller that measures disruption itself, as :class:`PrunePlugin` does, turns it off).
    optimizer : Optimizer, optional
        Its parameters are swapped for the new ones and their state sliced to the units that stay.
    min_units : int
        Every layer keeps at least this many units; asking for more is refused.

    Raises
    ------
    GrowthError
        An unknown method or layer, an index out of range or repeated, a layer left below
        ``min_units``, ``swe`` without data; the model (and the optimizer) are then exactly as
        before.
    """
    start = time.perf_counter()
    if method not in METHODS:
        raise GrowthError(f"prune: unknown method {method!r}; known: {', '.join(METHODS)}")
    if method == "swe" and data is None:
        raise GrowthError("prune(method='swe') needs data: the transfer is fitted on activations")
    if not (isinstance(ridge, float | int) and not isinstance(ridge, bool) and math.isfinite(ridge) and ridge >= 0):
        raise GrowthError(f"prune: ridge must be a finite number >= 0, got {ridge!r}")
    if not (isinstance(min_units, int) and not isinstance(min_units, bool) and min_units >= 1):
        raise GrowthError(f"prune: min_units must be an integer >= 1, got {min_units!r}")
    if not isinstance(units, Mapping):
        raise GrowthError(
            f"prune: units must map each hidden layer to the indices leaving it, e.g. {{0: [3, 5]}} "
            f"(got {type(units).__name__})"
        )
    batches = None if data is None else _finite_batches(data, "prune")
    grown = _growable(model, batches)
    before = grown.hidden_sizes
    cleaned: dict[int, Tensor] = {}
    for layer, idx in units.items():
        grown.check_layer(layer)
        t = _indices(idx, layer)
        n = before[layer]
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n):
            raise GrowthError(f"prune: layer {layer} has units 0..{n - 1}, got indices {t.tolist()}")
        if t.unique().numel() != t.numel():
            raise GrowthError(f"prune: layer {layer}: indices repeated in {t.tolist()}")
        if n - t.numel() < min_units:
            raise GrowthError(f"prune: layer {layer} would keep {n - t.numel()} of {n} units, fewer than {min_units}")
        if t.numel():
            cleaned[layer] = torch.sort(t).values
    # named as the caller's module names its parameters (a wrapped module's own names)
    names = {id(mod): name for name, mod in grown.module.named_modules()}
    slices: dict[str, list[tuple[int, Tensor]]] = {}
    keeps = {layer: _staying(before[layer], idx) for layer, idx in cleaned.items()}
    for layer, keep in keeps.items():
        for r in grown.members(layer):
            producer = names[id(r.producer)]
            slices.setdefault(f"{producer}.weight", []).append((0, keep))
            slices.setdefault(f"{producer}.bias", []).append((0, keep))
        for norm in grown.norms(layer):
            for pname, _ in norm.named_parameters(recurse=False):
                slices.setdefault(f"{names[id(norm)]}.{pname}", []).append((0, keep))
        for c in grown.consumers(layer):
            cols = unit_columns(keep, before[layer], c.weight.shape[1]) if c.weight.dim() == 2 else keep
            slices.setdefault(f"{names[id(c.module)]}.weight", []).append((1, cols))
    snap = grown.snapshot()
    saved_opt = (
        None if optimizer is None else ([list(g["params"]) for g in optimizer.param_groups], dict(optimizer.state))
    )
    kept: dict[int, float] = {}
    change = None
    try:
        grown.prepare()  # biases and cohort buffers, undone on failure
        before_out = None
        if method == "swe" and cleaned:  # one pass: every layer's moments, and the outputs before
            assert batches is not None
            moments, before_out = _moments(grown, sorted(cleaned), batches)
        elif measure and batches is not None:
            before_out = _moments(grown, [], batches)[1]
        for layer in sorted(cleaned):
            if method == "swe":
                kept[layer] = _transfer(grown, layer, cleaned[layer], keeps[layer], moments[layer], ridge)
            grown.keep_units(layer, keeps[layer], optimizer)
        if measure and batches is not None and before_out is not None and before_out.numel():
            after_out = _moments(grown, [], batches)[1]
            change = float((after_out - before_out).norm() / before_out.norm().clamp_min(1e-12))
    except BaseException as err:
        grown.restore(snap)
        if optimizer is not None and saved_opt is not None:
            for group, params in zip(optimizer.param_groups, saved_opt[0]):
                group["params"] = params
            optimizer.state.clear()
            optimizer.state.update(saved_opt[1])
        if isinstance(err, (GrowthError, KeyboardInterrupt)):
            raise
        raise GrowthError(f"prune failed ({type(err).__name__}: {err}); the model was left unchanged") from err
    info: dict[str, Any] = {"kept": kept} if kept else {}
    return PruneReport(
        cleaned,
        time.perf_counter() - start,
        before,
        grown.hidden_sizes,
        info=info,
        slices=slices,
        method=method,
        function_change=change,
    )
