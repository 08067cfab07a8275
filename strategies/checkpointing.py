"""Avalanche's checkpoints of a grown strategy: optimizers that dill can pickle by reference."""

from __future__ import annotations

__all__ = ["make_optimizers_checkpointable"]


def make_optimizers_checkpointable() -> list[str]:
    """Let Avalanche's dill-based checkpoints pickle torch optimizers by reference.

    ``torch.optim`` deletes its submodule attributes (``del adam`` in its ``__init__``), so
    dill cannot find ``torch.optim.adam.Adam`` by name and tries to pickle the class by value,
    which fails (``Can't pickle sentinel``). Re-attaching the already-imported submodules to
    the package, as a plain import would, restores lookup by name. Returns the names attached.
    """
    import sys

    import torch.optim

    attached = []
    for name, module in list(sys.modules.items()):
        parent, _, short = name.rpartition(".")
        if parent == "torch.optim" and module is not None and not hasattr(torch.optim, short):
            setattr(torch.optim, short, module)
            attached.append(short)
    return attached
