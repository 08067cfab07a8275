"""How a run fails once its settings were accepted (exit 1 at the command line)."""

from __future__ import annotations

__all__ = ["RunDiverged"]


class RunDiverged(RuntimeError):
    """Training produced a non-finite loss; the message names the experience and epoch."""
