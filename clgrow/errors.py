"""Exceptions raised by clgrow."""

from __future__ import annotations

__all__ = ["GrowthError", "ConfigError"]


class GrowthError(ValueError):
    """A growth step was refused or failed; the model is left exactly as it was."""


class ConfigError(GrowthError):
    """An invalid setting; the message names the field and what is allowed."""
