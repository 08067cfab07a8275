"""The names a run can give for a strategy, an optimizer or a plasticity method, importable without Avalanche or torch.

The command line parses and validates with these before it imports anything heavy;
:mod:`clgrow.strategies.builders` maps each name to its builder and refuses to import if the two
ever disagree.
"""

from __future__ import annotations

__all__ = ["STRATEGY_NAMES", "REFERENCE_STRATEGIES", "OPTIMIZERS", "PLASTICITY_NAMES"]

#: Every strategy ``build_strategy`` knows, in the order ``clgrow list`` shows them.
STRATEGY_NAMES = ("naive", "replay", "ewc", "si", "lwf", "agem", "gem", "cumulative", "mas", "rwalk", "lfl", "der",
                  "er-ace", "mir", "joint", "pnn")

#: Reference rows that run without GrowPlugin: ``joint`` trains once on every experience
#: together (the usual upper bound), ``pnn`` is Avalanche's progressive columns (growth of
#: another kind, with its own model; task-incremental only).
REFERENCE_STRATEGIES = ("joint", "pnn")

#: Optimizers a run can name; SGD's momentum defaults to 0.9 when not given.
OPTIMIZERS = ("adam", "adamw", "sgd")

#: Plasticity resets a run can add (``clgrow.plasticity``'s registry, plus ``none``).
PLASTICITY_NAMES = ("none", "redo", "cbp")
