"""The built-in growth and plasticity methods and their keyword arguments, known without importing torch.

The methods are declared once, where they are implemented: a registry decorator
(``@extenders.register("swe")``) on a class whose ``__init__`` signature lists its arguments. Those
modules import torch (about two seconds). The command line only needs the names and the scalar
arguments to build its parser, answer ``clgrow list`` and refuse a bad flag, so it reads the same
declarations from the modules' source with :mod:`ast`. A test holds this catalog equal to the live
registries and to :func:`clgrow.config.method_parameters`; a method the reader cannot follow fails
that test rather than vanishing from the command line.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["METHOD_MODULES", "REGISTRIES", "MethodParameter", "method_catalog", "keyword_arguments",
           "module_source"]

#: The modules that register the built-in methods (:mod:`clgrow.methods` imports them).
METHOD_MODULES = ("clgrow.distributor", "clgrow.gradmax", "clgrow.net2net", "clgrow.plasticity",
                  "clgrow.random_extender", "clgrow.svod", "clgrow.swe")

#: Kind of method -> (module holding its registry, the registry's name there).
REGISTRIES = {"extender": ("clgrow.extender", "extenders"), "distributor": ("clgrow.distributor", "distributors"),
              "plasticity": ("clgrow.plasticity", "resetters")}

_SCALARS = {"int": int, "float": float, "str": str, "bool": bool}


@dataclass(frozen=True)
class MethodParameter:
    """One keyword argument of an extender, distributor or plasticity method, read from its signature."""

    name: str
    type: type
    default: Any
    optional: bool

    def parse(self, text: str) -> Any:
        """Convert command-line text (``none`` for ``None`` where allowed)."""
        if self.optional and text.lower() in ("none", "null"):
            return None
        if self.type is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"expected true or false, got {text!r}")
            return text.lower() in ("true", "1")
        value = self.type(text)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {text!r}")
        return value


class _Unreadable(Exception):
    pass


def _value(node: ast.expr) -> Any:
    """A default written as a literal or as arithmetic on literals (``2 * 1024 ** 3``)."""
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left), _value(node.right)
        ops = {ast.Add: lambda: left + right, ast.Sub: lambda: left - right, ast.Mult: lambda: left * right,
               ast.Div: lambda: left / right, ast.Pow: lambda: left ** right}
        if type(node.op) not in ops:
            raise _Unreadable(ast.unparse(node))
        return ops[type(node.op)]()
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise _Unreadable(ast.unparse(node)) from None


def _scalar(annotation: ast.expr | None, default: Any) -> tuple[type, bool] | None:
    """``(type, optional)`` of a scalar annotation (``float``, ``int | None``, ``Optional[str]``), else None."""
    if annotation is None:
        return (type(default), False) if type(default) in _SCALARS.values() else None
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):  # a quoted annotation
        annotation = ast.parse(annotation.value, mode="eval").body
    if isinstance(annotation, ast.Name):
        return (_SCALARS[annotation.id], False) if annotation.id in _SCALARS else None
    parts: list[ast.expr] = []
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        parts = [annotation.left, annotation.right]
    elif isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value) in ("Optional", "typing.Optional"):
        parts = [annotation.slice, ast.Constant(None)]
    rest = [p for p in parts if not (isinstance(p, ast.Constant) and p.value is None)]
    if len(parts) == 2 and len(rest) == 1 and isinstance(rest[0], ast.Name) and rest[0].id in _SCALARS:
        return _SCALARS[rest[0].id], True
    return None


def keyword_arguments(args: ast.arguments) -> list[tuple[ast.arg, ast.expr | None]]:
    """The arguments of a parsed signature that can be passed by name, each with its default
    expression (``None``: no default); positional-only ones are left out."""
    positional = args.posonlyargs + args.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = list(zip(positional, defaults))[len(args.posonlyargs):]
    return pairs + list(zip(args.kwonlyargs, args.kw_defaults))


def module_source(module: str) -> ast.Module:
    """The parsed source of ``module``, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:  # pragma: no cover - the package always ships them
        raise ImportError(f"{module} not found")
    return ast.parse(Path(spec.origin).read_text(encoding="utf-8"))


def _parameters(init: ast.FunctionDef | None) -> dict[str, MethodParameter]:
    if init is None:  # object.__init__: no arguments
        return {}
    out = {}
    for arg, default in keyword_arguments(init.args):
        if arg.arg == "self":
            continue
        value = None if default is None else _value(default)
        kind = _scalar(arg.annotation, value)
        if kind is not None:
            out[arg.arg] = MethodParameter(arg.arg, kind[0], value, kind[1])
    return out


@functools.lru_cache(maxsize=None)
def method_catalog() -> dict[str, dict[str, dict[str, MethodParameter]]]:
    """Every built-in method by kind and name, with its scalar keyword arguments.

    Returns
    -------
    dict
        ``{kind: {name: {argument: MethodParameter}}}`` for the kinds of :data:`REGISTRIES`, names
        sorted; the same arguments :func:`clgrow.config.method_parameters` reads from the classes.
    """
    registry_kind = {registry: kind for kind, (_, registry) in REGISTRIES.items()}
    modules = sorted({*METHOD_MODULES, *(m for m, _ in REGISTRIES.values())})
    classes: dict[str, ast.ClassDef] = {}
    registered: list[tuple[str, str, ast.ClassDef]] = []
    for module in modules:
        for node in module_source(module).body:
            if not isinstance(node, ast.ClassDef):
                continue
            classes[node.name] = node
            for deco in node.decorator_list:
                call = deco if isinstance(deco, ast.Call) else None
                target = call.func if call is not None else None
                if (isinstance(target, ast.Attribute) and target.attr == "register"
                        and isinstance(target.value, ast.Name) and target.value.id in registry_kind
                        and call is not None and len(call.args) == 1 and isinstance(call.args[0], ast.Constant)):
                    registered.append((registry_kind[target.value.id], call.args[0].value, node))

    def init_of(cls: ast.ClassDef) -> ast.FunctionDef | None:
        for item in cls.body:
            if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                return item
        for base in cls.bases:  # first base that defines one (single inheritance, as the methods use)
            if isinstance(base, ast.Name) and base.id in classes:
                found = init_of(classes[base.id])
                if found is not None:
                    return found
        return None

    table: dict[str, dict[str, dict[str, MethodParameter]]] = {kind: {} for kind in REGISTRIES}
    for kind, name, cls in sorted(registered, key=lambda r: (r[0], r[1])):
        try:
            table[kind][name] = _parameters(init_of(cls))
        except _Unreadable as err:  # pragma: no cover - the catalog test names the method
            raise ImportError(f"{kind} {name!r}: default {err} is not a literal the catalog can read") from None
    return table
