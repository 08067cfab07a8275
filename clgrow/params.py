"""Method arguments, declared once as typed, validated dataclasses (no torch).

A method's arguments are a frozen dataclass deriving from :class:`Params`, each field made by
:func:`param` with its default, its bounds or choices and one line of help. Everything else is
derived from that declaration: the method's constructor checks its arguments with it, ``repr``
shows them, the command line makes one flag per field (with the help and the bounds), grid files
and ``summary.json`` carry :meth:`Params.to_dict`, and ``clgrow list`` describes it.

Why dataclasses and not pydantic: the declarations must import in milliseconds for ``--help``,
the constraints a method needs are few (a type, optionally ``None``, bounds, choices) and their
messages must name the method and the field in this project's words; a dependency would buy
neither.

Example
-------
>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class ScaleParams(Params):
...     scale: float = param(1.0, "factor on the new rows", gt=0)
>>> ScaleParams(scale=2).scale
2.0
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from clgrow.errors import ConfigError

__all__ = ["Params", "Spec", "param", "params_from_signature", "NoParams", "Configurable"]

_SCALARS = (bool, int, float, str)


@dataclass(frozen=True)
class Spec:
    """One argument's declaration: its type, default, constraints and help.

    Attributes
    ----------
    type : type
        ``int``, ``float``, ``str`` or ``bool`` (an ``int`` is accepted for a ``float``).
    optional : bool
        ``None`` is allowed (written ``none`` on the command line).
    ge, gt, le, lt : float, optional
        Bounds on a number.
    choices : tuple of str, optional
        The allowed values of a string.
    """

    name: str
    type: type
    default: Any
    help: str = ""
    optional: bool = False
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] | None = None

    def allowed(self) -> str:
        """What the argument accepts, in words (``a number > 0``, ``one of 'a', 'b'``...)."""
        if self.type is bool:
            what = "true or false"
        elif self.type is str:
            what = f"one of {', '.join(map(repr, self.choices))}" if self.choices else "a string"
        else:
            what = "an integer" if self.type is int else "a finite number"
            bounds = [
                f"{op} {_num(v)}"
                for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
                if v is not None
            ]
            if bounds:
                what += " " + " and ".join(bounds)
        return what + (" or none" if self.optional else "")

    def check(self, value: Any) -> Any:
        """``value`` in its normal form (an int for a float becomes a float), or ``ConfigError``."""
        if value is None and self.optional:
            return None
        ok = False
        if self.type is bool:
            ok = isinstance(value, bool)
        elif self.type is str:
            ok = isinstance(value, str) and (self.choices is None or value in self.choices)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.type is int and isinstance(value, float):
                ok = False
            elif math.isfinite(value):
                ok = all(
                    bound is None or cmp(value, bound)
                    for bound, cmp in (
                        (self.ge, lambda v, b: v >= b),
                        (self.gt, lambda v, b: v > b),
                        (self.le, lambda v, b: v <= b),
                        (self.lt, lambda v, b: v < b),
                    )
                )
                if ok:
                    return float(value) if self.type is float else int(value)
        if not ok:
            raise ConfigError(f"{self.name} must be {self.allowed()} (got {value!r})")
        return value

    def describe(self) -> str:
        """One line for ``--help`` and ``clgrow list``: help, what is allowed, the default."""
        head = f"{self.help}; " if self.help else ""
        return f"{head}{self.allowed()} (default: {_num(self.default) if self.default is not None else 'none'})"


def _num(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool) and v >= 2**20 and v % 2**20 == 0:
        return f"{v} = {v // 2**20} MiB"
    return repr(v) if isinstance(v, str) else str(v)


def param(
    default: Any,
    help: str = "",
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A dataclass field of a :class:`Params` declaration, with its constraints and help."""
    return dataclasses.field(
        default=default, metadata={"clgrow": dict(help=help, ge=ge, gt=gt, le=le, lt=lt, choices=choices)}
    )


@dataclass(frozen=True)
class Params(Mapping[str, Any]):
    """Base of every method's argument declaration (a frozen dataclass of :func:`param` fields).

    An instance is validated when made (``ConfigError`` naming the method and the field) and is a
    read-only mapping of its arguments, so ``Method(**params)`` and ``Method(params)`` both work.
    ``kind`` and ``method`` are set when the declaration is registered.
    """

    kind: ClassVar[str] = "method"
    method: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for name, spec in self.specs().items():
            try:
                object.__setattr__(self, name, spec.check(getattr(self, name)))
            except ConfigError as err:
                raise ConfigError(f"{self.label()}: {err}") from None
        try:
            self.check()
        except ConfigError as err:
            raise ConfigError(f"{self.label()}: {err}") from None

    def check(self) -> None:
        """Constraints between fields (override; raise :class:`ConfigError`)."""

    @classmethod
    def label(cls) -> str:
        """``extender 'swe'``: how messages name the method."""
        return f"{cls.kind} {cls.method!r}" if cls.method else cls.__name__

    @classmethod
    def specs(cls) -> dict[str, Spec]:
        """Every argument's :class:`Spec`, in declaration order."""
        return _specs(cls)

    @classmethod
    def build(cls, values: Mapping[str, Any] | None = None, **kwargs: Any) -> Params:
        """An instance from a mapping and/or keywords, refusing unknown names with the known ones."""
        merged = {**(dict(values) if values is not None else {}), **kwargs}
        unknown = sorted(set(merged) - set(cls.specs()))
        if unknown:
            raise ConfigError(
                f"{cls.label()} has no argument(s) {', '.join(unknown)}; known: {', '.join(cls.specs()) or 'none'}"
            )
        return cls(**merged)

    def replace(self, **changes: Any) -> Params:
        """A validated copy with ``changes``."""
        return type(self).build(self.to_dict(), **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every argument, as plain data (what ``summary.json`` records)."""
        return {name: getattr(self, name) for name in self.specs()}

    def changes(self) -> dict[str, Any]:
        """The arguments that differ from their defaults."""
        return {name: v for name, v in self.to_dict().items() if v != self.specs()[name].default}

    @classmethod
    def numpy_doc(cls) -> str:
        """The arguments as a numpy-style ``Parameters`` section (a method's class docstring ends
        with it: the declaration is the one source of each argument's help)."""
        lines = ["Parameters", "----------"]
        for name, spec in cls.specs().items():
            lines += [f"{name} : {spec.type.__name__}{', optional' if spec.optional else ''}", f"    {spec.describe()}"]
        return "\n".join("    " + line for line in lines)

    def arguments(self) -> str:
        """``name=value, ...`` of every argument (the method's ``repr``)."""
        return ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())

    # Mapping interface: `Method(**params)`
    def __getitem__(self, key: str) -> Any:
        if key not in self.specs():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.specs())

    def __len__(self) -> int:
        return len(self.specs())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.arguments()})"


@dataclass(frozen=True)
class NoParams(Params):
    """A method without arguments."""


_RESERVED = frozenset(n for n in dir(Params) if not n.startswith("__"))


@functools.cache
def _specs(cls: type[Params]) -> dict[str, Spec]:
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("clgrow")
        if f.name in _RESERVED:
            raise TypeError(f"{cls.__name__}.{f.name}: the name is taken by Params itself; choose another")
        if meta is None:
            raise TypeError(f"{cls.__name__}.{f.name}: declare it with clgrow.params.param(default, help, ...)")
        base, optional = _scalar(hints[f.name])
        if base is None:
            raise TypeError(
                f"{cls.__name__}.{f.name}: type {hints[f.name]} is not int, float, str or bool (optionally | None)"
            )
        out[f.name] = Spec(f.name, base, f.default, optional=optional, **meta)
    return out


def _scalar(hint: Any) -> tuple[type | None, bool]:
    """``(base, optional)`` of ``float``, ``int | None``, ``Optional[str]``...; base None if not scalar."""
    if hint in _SCALARS:
        return hint, False
    args = typing.get_args(hint)
    rest = [a for a in args if a is not type(None)]
    if len(args) == 2 and len(rest) == 1 and rest[0] in _SCALARS:
        return rest[0], True
    return None, False


def params_from_signature(cls: Any, kind: str, name: str) -> type[Params]:
    """A declaration made from a class's ``__init__`` (or a function's) keyword arguments (a user's method that
    declares none): scalar arguments with defaults become fields, typed by their annotation
    (or their default's type); arguments of other types are left to the class itself."""
    import inspect

    target = cls.__init__ if isinstance(cls, type) else cls  # type: ignore[misc]  # a class, or a builder
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # an annotation that does not resolve: fall back to the defaults' types
        hints = {}
    fields: list[tuple[str, Any, Any]] = []
    for arg, p in inspect.signature(target).parameters.items():
        if arg == "self" or p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) or p.default is p.empty:
            continue
        hint = hints.get(arg, type(p.default) if p.default is not None else None)
        base, optional = _scalar(hint)
        if base is None:
            continue
        if p.default is None:
            optional = True
        fields.append((arg, base | None if optional else base, param(p.default, "")))
    made: type[Params] = dataclasses.make_dataclass(
        f"{getattr(cls, '__name__', name)}Params", fields, bases=(Params,), frozen=True
    )
    made.kind, made.method = kind, name
    return made


_Declared = Params  # the declaration type, by a name the class attribute ``Params`` does not hide


class Configurable:
    """Base of a method built from its declaration: ``Method(**kwargs)`` or ``Method(params)``.

    The validated declaration is ``self.params``; each argument is also an attribute (what the
    method reads), and ``repr`` shows every argument.
    """

    Params: ClassVar[type[Params]] = NoParams
    params: _Declared

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = cls.__dict__.get("Params")
        if declared is not None and declared.specs() and cls.__doc__:
            cls.__doc__ = f"{cls.__doc__.rstrip()}\n\n{declared.numpy_doc()}\n"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        declared = type(self).Params
        if len(args) == 1 and isinstance(args[0], declared) and not kwargs:
            self.params = args[0]
        elif len(args) == 1 and isinstance(args[0], Mapping):
            self.params = declared.build(args[0], **kwargs)
        else:  # positional arguments in declaration order, as a plain signature takes them
            names = list(declared.specs())
            if len(args) > len(names):
                raise TypeError(
                    f"{type(self).__name__} takes at most {len(names)} positional argument(s) "
                    f"({', '.join(names)}), got {len(args)}"
                )
            clash = sorted(set(names[: len(args)]) & set(kwargs))
            if clash:
                raise TypeError(f"{type(self).__name__} got {', '.join(clash)} twice")
            self.params = declared.build(dict(zip(names, args)), **kwargs)
        for name, value in self.params.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params.arguments()})"
