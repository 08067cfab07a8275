"""Module attributes resolved on first use (PEP 562), so a package import stays light."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_attributes(
    module: str, table: dict[str, str], namespace: dict[str, Any], load_all: bool = False
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for a package whose public ``name`` lives in ``table[name]``.

    ``load_all`` resolves every name on the first access (the registries of :mod:`clgrow` must
    hold every built-in method as soon as any name is used).
    """

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        for key in table if load_all else [name]:
            namespace[key] = getattr(importlib.import_module(table[key]), key)
        return namespace[name]

    def __dir__() -> list[str]:
        return sorted([*namespace, *table])

    return __getattr__, __dir__
