"""clgrow 0.1's modules for its pickles (checkpoints): a moved one loads, a removed one is refused."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType
from typing import Any

_METHODS = ("extender", "distributor", "swe", "coupling", "svod", "gradmax")
MOVED = {
    **{f"clgrow.{m}": f"clgrow.methods.{m}" for m in (*_METHODS, "grow", "prune", "plasticity")},
    **{f"clgrow.{m}": f"clgrow.measure.{m}" for m in ("inactivity", "disruption", "compute")},
    **{f"clgrow.{m}": "clgrow.methods.extender" for m in ("random_extender", "net2net")},
    **{f"clgrow.methods.{m}": "clgrow.methods.extender" for m in ("random_extender", "net2net")},
    "clgrow.trace": "clgrow.discovery",
    "clgrow.config": "clgrow.strategies.schedule",
    "clgrow.settings": "clgrow.strategies.settings",
}
REMOVED = {
    name: (
        "clgrow 0.2 grows every model through its traced sites: GrowableMLP, GrowableCNN and GrowableResNet "
        "are gone, and a checkpoint that holds one cannot be resumed. Build the model with clgrow.mlp, "
        "clgrow.cnn or clgrow.resnet (plain modules) at the checkpoint's widths and run again"
    )
    for name in ("clgrow.model", "clgrow.cnn", "clgrow.channels")
}


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name in REMOVED:
            raise ImportError(f"{name}: {REMOVED[name]}", name=name)
        if name in MOVED:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        """The module is its new self, already executed."""


def install() -> None:
    """Answer imports of clgrow 0.1's module names (once per process)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
