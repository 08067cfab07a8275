"""The names a run can give for a strategy, an optimizer or a plasticity method, importable without Avalanche or torch.

The command line parses and validates with these before it imports anything heavy;
:mod:`clgrow.strategies.builders` maps each name to its builder and refuses to import if the two
ever disagree.
"""

from __future__ import annotations

import ast
import functools
from typing import Any

from clgrow.catalog import keyword_arguments, module_source

__all__ = ["STRATEGY_NAMES", "REFERENCE_STRATEGIES", "OPTIMIZERS", "PLASTICITY_NAMES", "REQUIRED",
           "strategy_hyperparameters"]

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


#: A builder hyperparameter without a default (none today; kept so the table can say so).
REQUIRED = object()


@functools.lru_cache(maxsize=None)
def strategy_hyperparameters() -> dict[str, dict[str, Any]]:
    """Each strategy's named hyperparameters and their defaults, read from the builders' source.

    ``clgrow.strategies.builders`` imports Avalanche (seconds); its builders' signatures are the
    one declaration of what a strategy accepts. Reading them with :mod:`ast` lets a config be
    checked without that import; a test holds this table equal to ``inspect.signature``.

    Returns
    -------
    dict[str, dict[str, Any]]
        ``{strategy: {parameter: default}}``; a default that is not a literal is ``None`` (not
        checked), a missing one :data:`REQUIRED`.
    """
    tree = module_source("clgrow.strategies.builders")
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    table: dict[str, dict[str, Any]] = {}
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(target, ast.Name) and target.id == "STRATEGIES" and isinstance(node.value, ast.Dict):
            for key, value in zip(node.value.keys, node.value.values):
                if isinstance(key, ast.Constant) and isinstance(value, ast.Name):
                    table[key.value] = _parameters(functions[value.id].args)
    return table


def _parameters(args: ast.arguments) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for arg, default in keyword_arguments(args):
        if default is None:
            out[arg.arg] = REQUIRED
            continue
        try:
            out[arg.arg] = ast.literal_eval(default)
        except ValueError:
            out[arg.arg] = None
    return out
