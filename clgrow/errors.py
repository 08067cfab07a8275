"""Exceptions raised by clgrow."""

from __future__ import annotations

__all__ = ["GrowthError"]


class GrowthError(ValueError):
    """A growth step was refused or failed; the model is left exactly as it was."""
