"""How a run setting is declared: its section, kind, default, flag, help and when it applies (no torch).

A run's settings (:class:`~clgrow.experiments.config.RunConfig`) and its growth settings
(:class:`~clgrow.strategies.schedule.GrowthConfig`) are dataclass fields made by :func:`setting`, as a method's arguments are made by :func:`clgrow.params.param`. Everything else
is derived from the declaration: the field's check and its message, the ``clgrow run`` flag
(:func:`add_flags`, :func:`read_flags`), the ``[run]`` table of a grid file and ``summary.json``
(the field names), the flag reference of docs/cli.md (:func:`reference`) and the refusal of a
setting the chosen run would ignore (``applies``).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SECTIONS",
    "Kind",
    "Setting",
    "setting",
    "settings_of",
    "add_flags",
    "read_flags",
    "reference",
    "whole",
    "number",
    "flag",
    "one_of",
    "text",
    "whole_list",
    "names",
    "table",
    "custom",
]

#: A run's sections, in the order their rules run and the reference lists them.
SECTIONS = ("data", "strategy", "model", "training", "growth", "pruning", "plasticity", "output")


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Kind:
    """What values a setting takes: ``ok(value)``, the words for them, and its flag's shape.

    Attributes
    ----------
    ok : callable
        ``value -> bool``.
    allowed : str
        What is allowed, in words (``an integer >= 1``): messages and the reference say it.
    parse : callable, optional
        Converts one command-line word (argparse's ``type``).
    nargs : str, optional
        ``"+"`` for a list flag.
    boolean : bool
        A ``--x/--no-x`` flag.
    choices : callable, optional
        The allowed words (looked up when the flag is made: a registry filled by imports).
    """

    ok: Callable[[Any], bool]
    allowed: str
    parse: Callable[[str], Any] | None = None
    nargs: str | None = None
    boolean: bool = False
    choices: Callable[[], Sequence[str]] | None = None
    metavar: str | None = None


def _or_absent(kind: Kind, optional: bool) -> Kind:
    if not optional:
        return kind
    return dataclasses.replace(kind, ok=lambda v: v is None or kind.ok(v), allowed=kind.allowed + " or absent")


def whole(ge: int = 1, le: int | None = None, optional: bool = False) -> Kind:
    """An integer ``>= ge`` (and ``<= le``)."""
    words = f"an integer >= {ge}" if le is None else f"an integer in [{ge}, {le}]"
    return _or_absent(
        Kind(lambda v: _whole(v) and v >= ge and (le is None or v <= le), words, parse=int, metavar="N"), optional
    )


def number(
    ge: float | None = None,
    gt: float | None = None,
    lt: float | None = None,
    optional: bool = False,
    le: float | None = None,
) -> Kind:
    """A finite number within the bounds given."""
    if ge is not None and lt is not None:
        words = f"a number in [{ge:g}, {lt:g})"
    else:
        bounds = " and ".join(
            f"{op} {b:g}" for op, b in ((">=", ge), (">", gt), ("<", lt), ("<=", le)) if b is not None
        )
        words = f"a finite number {bounds}".rstrip()

    def ok(v: Any) -> bool:
        return (
            _finite(v)
            and (ge is None or v >= ge)
            and (gt is None or v > gt)
            and (lt is None or v < lt)
            and (le is None or v <= le)
        )

    return _or_absent(Kind(ok, words, parse=float, metavar="X"), optional)


def flag() -> Kind:
    """True or false (a ``--x/--no-x`` flag)."""
    return Kind(lambda v: isinstance(v, bool), "true or false", boolean=True)


def one_of(choices: Callable[[], Sequence[str]], optional: bool = False) -> Kind:
    """One of the names ``choices()`` gives (a registry's, read when checked)."""
    return _or_absent(
        Kind(lambda v: isinstance(v, str) and v in choices(), "one of the names listed", choices=choices), optional
    )


def text(optional: bool = False, what: str = "a non-empty string", metavar: str | None = None) -> Kind:
    """A non-empty string (a name or a path)."""
    return _or_absent(Kind(lambda v: isinstance(v, str) and v.strip() != "", what, metavar=metavar), optional)


def whole_list(ge: int = 1, metavar: str = "N") -> Kind:
    """A non-empty list of integers ``>= ge``."""
    return Kind(
        lambda v: isinstance(v, list) and bool(v) and all(_whole(x) and x >= ge for x in v),
        f"a non-empty list of integers >= {ge}",
        parse=int,
        nargs="+",
        metavar=metavar,
    )


def names(choices: Callable[[], Sequence[str]] | None = None, what: str = "a list of names") -> Kind:
    """A list of names (from ``choices()`` when given)."""

    def ok(v: Any) -> bool:
        return isinstance(v, list) and all(isinstance(x, str) and (choices is None or x in choices()) for x in v)

    return Kind(ok, what, choices=choices)


def table(what: str = "a table") -> Kind:
    """A table of keyword arguments (a TOML table; on the command line ``KEY=VALUE`` pairs)."""
    return Kind(lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v), what)


def custom(ok: Callable[[Any], bool], allowed: str, **flag_shape: Any) -> Kind:
    """A kind of its own (``ok`` and its words), with its flag's shape (``parse``, ``nargs``...)."""
    return Kind(ok, allowed, **flag_shape)


@dataclass(frozen=True)
class Setting:
    """One run setting's declaration.

    Attributes
    ----------
    name, section : str
        The field and the section (one of :data:`SECTIONS`) it belongs to.
    kind : Kind
        What values it takes.
    help : str
        One line for ``--help`` and the reference.
    flag : str or None
        Its ``clgrow run`` flag; ``None`` where another piece of the command line sets it
        (``via`` says which).
    via : str
        For a setting without a generated flag: how the command line sets it.
    applies : callable, optional
        ``config -> None`` when the setting matters to that run, else why it does not: a value
        other than the default is then refused with that reason.
    """

    name: str
    section: str
    kind: Kind
    help: str
    default: Any
    flag: str | None = None
    via: str = ""
    applies: Callable[[Any], str | None] | None = None
    aliases: tuple[str, ...] = ()

    def takes(self) -> str:
        """What the setting takes, in words, with the names a choice allows."""
        allowed = self.kind.allowed
        if self.kind.choices is not None:
            listed = ", ".join(self.kind.choices())
            allowed = allowed.replace("the names listed", listed) if "listed" in allowed else f"{allowed} ({listed})"
        return allowed

    def check(self, value: Any) -> str | None:
        """Why ``value`` is refused (the field's message), or ``None``."""
        return None if self.kind.ok(value) else f"{self.name}: must be {self.takes()} (got {value!r})"

    def default_value(self) -> Any:
        """The default, a fresh copy for a list or a table."""
        return list(self.default) if isinstance(self.default, list) else self.default


def setting(
    section: str,
    kind: Kind,
    default: Any,
    help: str,
    *,
    flag: str | None = "",
    via: str = "",
    applies: Callable[[Any], str | None] | None = None,
    aliases: tuple[str, ...] = (),
) -> Any:
    """A dataclass field declaring one run setting (:class:`Setting`).

    ``flag=""`` makes ``--name-with-dashes``; ``None`` makes no flag (give ``via``).
    """
    if section not in SECTIONS:
        raise ValueError(f"section {section!r} is not one of {SECTIONS}")
    meta = dict(section=section, kind=kind, help=help, flag=flag, via=via, applies=applies, aliases=aliases)
    if isinstance(default, (list, dict)):
        made = default.copy()
        return dataclasses.field(default_factory=lambda: made.copy(), metadata={"setting": meta})
    return dataclasses.field(default=default, metadata={"setting": meta})


_DECLARED: dict[type, dict[str, Setting]] = {}


def settings_of(cls: type) -> dict[str, Setting]:
    """Every declared setting of a settings dataclass, in declaration order."""
    if cls in _DECLARED:
        return _DECLARED[cls]
    out = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("setting")
        if meta is None:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        flag_name = meta["flag"]
        if flag_name == "":
            flag_name = "--" + f.name.replace("_", "-")
        out[f.name] = Setting(
            f.name,
            meta["section"],
            meta["kind"],
            meta["help"],
            default,
            flag_name,
            meta["via"],
            meta["applies"],
            meta["aliases"],
        )
    _DECLARED[cls] = out
    return out


def add_flags(parser: argparse.ArgumentParser, cls: type, prefix: str = "run.", title: str = "{} settings") -> None:
    """One flag per setting of ``cls`` that declares one, grouped by section (defaults stay in the
    declaration: an absent flag leaves the field out, see :func:`read_flags`, which reads them
    back under ``prefix``)."""
    groups: dict[str, Any] = {}
    for s in settings_of(cls).values():
        if s.flag is None:
            continue
        if s.section not in groups:
            groups[s.section] = parser.add_argument_group(title.format(s.section))
        k = s.kind
        shown = s.default if not isinstance(s.default, list) else " ".join(map(str, s.default))
        kw: dict[str, Any] = dict(dest=prefix + s.name, default=argparse.SUPPRESS)
        kw["help"] = f"{s.help} (default: {shown})".replace("%", "%%")
        if k.boolean:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            if k.parse is not None:
                kw["type"] = k.parse
            if k.nargs is not None:
                kw["nargs"] = k.nargs
            if k.choices is not None:
                kw["choices"] = list(k.choices())
            if k.choices is None:
                kw["metavar"] = k.metavar or s.name.upper()
        groups[s.section].add_argument(s.flag, *s.aliases, **kw)


def read_flags(args: argparse.Namespace, prefix: str = "run.") -> dict[str, Any]:
    """The settings given on the command line (made by :func:`add_flags` with ``prefix``), by field name."""
    return {k[len(prefix) :]: v for k, v in vars(args).items() if k.startswith(prefix)}


def reference(cls: type, key: str = "`[run]` key", heading: str = "{}") -> str:
    """The flag reference in Markdown: one table per section, every setting with its flag (or what
    sets it), what it takes, its default and its help (docs/cli.md holds this text, tested)."""
    lines: list[str] = []
    by_section: dict[str, list[Setting]] = {}
    for s in settings_of(cls).values():
        by_section.setdefault(s.section, []).append(s)
    for section in SECTIONS:
        rows = by_section.get(section, [])
        if not rows:
            continue
        lines += [
            f"### {heading.format(section)}",
            "",
            f"| setting ({key}) | flag | takes | default | meaning |",
            "|---|---|---|---|---|",
        ]
        for s in rows:
            how = ", ".join(f"`{f}`" for f in (s.flag, *s.aliases)) if s.flag else s.via
            takes = s.takes()
            default = s.default if not isinstance(s.default, list) else s.default or "[]"
            only = f" (only with {s.applies.__doc__.strip()})" if s.applies is not None and s.applies.__doc__ else ""
            lines.append(f"| `{s.name}` | {how} | {takes} | `{default}` | {s.help}{only} |")
        lines.append("")
    return "\n".join(lines)
