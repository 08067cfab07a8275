"""A grown model saved, and loaded back into a fresh instance of its own class.

Growth changes a model's shapes (wider layers, a bias where a layer had none, clgrow's cohort
buffers), so a strict ``load_state_dict`` into a model built as the user builds it fails, and a
lax one silently drops what growth added. :func:`load_grown` first gives the fresh model the
checkpoint's shapes (every parameter and buffer, and the layers' size attributes), then loads it
strictly: the outputs are the saved model's, bit for bit.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from clgrow.errors import GrowthError
from clgrow.sites import restore_module, snapshot_module

__all__ = ["save_grown", "load_grown", "FORMAT"]

FORMAT = "clgrow.grown/1"

#: A layer's size attributes, from the first dimension of its weight (or running mean) and the second.
_OUT = ("out_features", "out_channels", "num_features", "num_channels")
_IN = ("in_features", "in_channels")


def save_grown(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Write ``model``'s state and which of its entries are parameters to ``path`` (a grown model
    or not); :func:`load_grown` reads it into a fresh instance of the same class."""
    torch.save(
        {"format": FORMAT, "state_dict": model.state_dict(), "parameters": [n for n, _ in model.named_parameters()]},
        path,
    )


def load_grown(
    model: nn.Module, checkpoint: str | os.PathLike[str] | Mapping[str, Any], map_location: Any = None
) -> nn.Module:
    """Give ``model`` (built as at the start, say at its initial widths) the shapes of a model saved
    by :func:`save_grown` and load its state strictly; returns ``model``.

    Every entry of the checkpoint must name a parameter or buffer of a module ``model`` has, and
    ``model`` no entry the checkpoint lacks; a failure leaves ``model`` as it was.
    """
    data = checkpoint if isinstance(checkpoint, Mapping) else torch.load(checkpoint, map_location, weights_only=True)
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise GrowthError(f"load_grown: not a checkpoint written by save_grown (format {FORMAT!r})")
    state, params = data["state_dict"], set(data["parameters"])
    mods = dict(model.named_modules())
    snap = snapshot_module(model)
    added: list[tuple[nn.ModuleDict, str]] = []
    try:
        with torch.no_grad():
            for key, value in state.items():
                path, _, name = key.rpartition(".")
                mod = mods.get(path) or _head_like(model, mods, path, added)
                if mod is None:
                    raise GrowthError(f"load_grown: the checkpoint has {key!r}, the model no module {path!r}")
                held = mod._parameters.get(name) if name in mod._parameters else mod._buffers.get(name)
                if held is not None and held.shape == value.shape:
                    continue
                device = held.device if held is not None else next(iter(mod.parameters()), value).device
                fresh = torch.empty(value.shape, dtype=value.dtype, device=device)
                if key in params:
                    grad = held.requires_grad if isinstance(held, nn.Parameter) else True
                    mod._parameters[name] = nn.Parameter(fresh, requires_grad=grad)
                else:
                    mod._buffers[name] = fresh
            for mod in mods.values():
                _sync_sizes(mod)
            model.load_state_dict(state, strict=True)
    except (GrowthError, RuntimeError) as err:
        for box, name in added:
            del box[name]
        restore_module(snap)
        if isinstance(err, GrowthError):
            raise
        raise GrowthError(f"load_grown: the checkpoint does not fit this model: {str(err).strip()[:400]}") from None
    return model


def _head_like(
    model: nn.Module, mods: dict[str, nn.Module], path: str, added: list[tuple[nn.ModuleDict, str]]
) -> nn.Module | None:
    """A module the training added to a container (a task's head in a ``ModuleDict``, as
    Avalanche's multi-head classifier adds them): a copy of the container's first, resized by the
    loader like any other; ``None`` where no such container holds the path."""
    parts = path.split(".")
    for depth in range(len(parts), 0, -1):
        parent = mods.get(".".join(parts[: depth - 1]) if depth > 1 else "")
        box = mods.get(".".join(parts[:depth]))
        if box is None and isinstance(parent, nn.ModuleDict) and len(parent) > 0:
            parent[parts[depth - 1]] = copy.deepcopy(next(iter(parent.values())))
            added.append((parent, parts[depth - 1]))
            mods.update({n: m for n, m in model.named_modules()})
            return mods.get(path)
    return None


def _sync_sizes(mod: nn.Module) -> None:
    """A layer's size attributes from its (resized) weight or running statistics."""
    w = mod._parameters.get("weight")
    ref = w if w is not None else mod._buffers.get("running_mean")
    if ref is None or ref.dim() == 0:
        return
    for attr in _OUT:
        if isinstance(getattr(mod, attr, None), int):
            setattr(mod, attr, int(ref.shape[0]))
    if w is not None and w.dim() > 1:
        for attr in _IN:
            if isinstance(getattr(mod, attr, None), int):
                setattr(mod, attr, int(w.shape[1]) * int(getattr(mod, "groups", 1)))
