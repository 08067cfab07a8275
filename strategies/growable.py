"""The model of a strategy as clgrow grows and measures it, whoever built it."""

from __future__ import annotations

from typing import Any

import torch

from clgrow import GrowthError
from clgrow.discovery import still_valid
from clgrow.sites import as_growable, known_sites

__all__ = ["growable_model"]


def growable_model(strategy: Any, strict: bool = False) -> Any | None:
    """A :class:`~clgrow.sites.GrowableModule` over ``strategy.model``, from its last site trace
    (clgrow's builders trace theirs) while that matches the module or, before one, from two samples
    of the current experience. ``None`` when the model has no growth site (or no experience is known
    yet to trace it on); with ``strict``, a :class:`GrowthError` saying why."""
    model = strategy.model
    if not isinstance(model, torch.nn.Module):
        return None
    try:
        found = known_sites(model)
        if found is not None and still_valid(model, found):
            return as_growable(model)
        dataset = getattr(getattr(strategy, "experience", None), "dataset", None)
        if dataset is None or len(dataset) == 0:
            if strict:
                raise GrowthError(f"no data to trace the sites of {type(model).__name__} on")
            return None
        samples = [dataset[i] for i in range(min(2, len(dataset)))]
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        x = torch.stack([s[0] for s in samples]).to(device)
        t = int(samples[0][2]) if len(samples[0]) > 2 else None
        return as_growable(model, x, t)
    except GrowthError:
        if strict:
            raise
        return None
