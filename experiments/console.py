"""Console hygiene shared by the CLI and grid workers (no Avalanche import here)."""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["quiet_avalanche_deprecations"]


def quiet_avalanche_deprecations() -> None:
    """Drop Avalanche's own DeprecationWarnings from the console.

    Avalanche's ``deprecated`` decorator calls ``warnings.simplefilter("once", ...)`` on every
    call, which overrides any filter set before, so the warnings are dropped where they are shown.
    Called by the CLI and by grid workers only: importing clgrow changes no warning filter.
    """
    shown = warnings.showwarning
    if getattr(shown, "_clgrow_quiet", False):
        return

    def show(
        message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None, line: str | None = None
    ) -> None:
        if issubclass(category, DeprecationWarning) and "avalanche" in str(filename):
            return
        shown(message, category, filename, lineno, file, line)

    show._clgrow_quiet = True  # type: ignore[attr-defined]
    warnings.showwarning = show
