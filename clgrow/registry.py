"""Registries of methods by kind: name -> declaration, and the class that implements it (no torch).

Each registry knows a method from its declaration (:class:`~clgrow.params.Params`) and loads the
implementation only when one is built, so the command line lists methods, makes their flags and
checks their arguments without importing torch. Three ways in, all alike afterwards (flags, grid
axis, validation, ``clgrow list``):

* ``@extenders.declare("swe", impl="clgrow.methods.swe:SWE")`` on a declaration (the built-in methods,
  :mod:`clgrow.methods`; a light third-party module can do the same);
* ``@extenders.register("mine")`` on an implementation class (its ``Params`` attribute, or its
  ``__init__``'s scalar keyword arguments, declare its arguments);
* an installed package's entry point in the group ``clgrow.extenders`` (``clgrow.distributors``,
  ``clgrow.plasticity_methods``, ``clgrow.strategies``): loading it registers what it names, as importing
  a module named by ``--import`` does.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from clgrow.errors import ConfigError
from clgrow.params import NoParams, Params, params_from_signature

__all__ = [
    "Registry",
    "UnknownMethod",
    "extenders",
    "distributors",
    "plasticity_methods",
    "strategies",
    "REGISTRIES",
]

T = TypeVar("T")
P = TypeVar("P", bound=type[Params])


class UnknownMethod(ConfigError, KeyError):
    """A name no registry entry has (a ``KeyError`` for mapping code, a usage error for the CLI)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass
class _Entry:
    params: type[Params]
    impl: str | Any  # "module:attribute" until loaded

    def load(self) -> Any:
        if isinstance(self.impl, str):
            module, _, attr = self.impl.partition(":")
            self.impl = getattr(importlib.import_module(module), attr)
        return self.impl


class Registry(Mapping[str, Any], Generic[T]):
    """A read-only mapping name -> implementation, filled by declarations and registrations.

    Parameters
    ----------
    kind : str
        What a method of this registry is called in messages (``extender``).
    group : str
        The entry-point group third-party packages register under.
    builtins : str, optional
        Module whose import declares the built-in methods (imported on first use).
    """

    def __init__(self, kind: str, group: str, builtins: str | None = None) -> None:
        self.kind, self.group, self.builtins = kind, group, builtins
        self._entries: dict[str, _Entry] = {}
        self._loaded = False

    # declaring ---------------------------------------------------------------------------
    def declare(self, name: str, impl: str) -> Callable[[P], P]:
        """Class decorator on a :class:`Params` declaration: method ``name`` is implemented by
        ``impl`` (``"module:Class"``, imported when the method is first built)."""

        def deco(params: P) -> P:
            self._add(name, params, impl)
            return params

        return deco

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator on an implementation: its ``Params`` (or its ``__init__`` signature)
        declares the arguments."""

        def deco(cls: type[T]) -> type[T]:
            declared = getattr(cls, "Params", NoParams)
            own = "Params" in vars(cls)
            if not own and declared is not NoParams and "__init__" in vars(cls):
                # a subclass of a declared method with arguments of its own: the parent's declaration
                # would hide them (their flags unknown, the parent's help shown)
                raise TypeError(
                    f"{self.kind} {name!r}: {cls.__name__} adds __init__ arguments to {declared.__name__}'s "
                    f"declaration; declare them instead: a frozen dataclass deriving from {declared.__name__} "
                    f"with a param(...) per argument, set as {cls.__name__}.Params"
                )
            if declared is NoParams:
                params = params_from_signature(cls, self.kind, name)
            elif own:
                params = declared
            else:  # inherited unchanged: a copy of its own, so the parent keeps its name and help
                params = type(f"{cls.__name__}Params", (declared,), {"__doc__": declared.__doc__})
                cls.Params = params  # type: ignore[attr-defined]
            self._add(name, params, cls)
            cls.name = name  # type: ignore[attr-defined]
            return cls

        return deco

    def _add(self, name: str, params: type[Params], impl: Any) -> None:
        if not isinstance(name, str) or not name or "+" in name or name != name.strip():
            raise ValueError(f"{self.kind} name {name!r}: give a non-empty name without '+' or spaces")
        if name in self._entries:
            first = self._entries[name].impl
            where = first if isinstance(first, str) else getattr(first, "__module__", "?")
            raise KeyError(f"{self.kind} {name!r} is already registered (by {where}); choose another name")
        if not (isinstance(params, type) and issubclass(params, Params)):
            raise TypeError(f"{self.kind} {name!r}: the declaration must be a clgrow.params.Params dataclass")
        params.kind, params.method = self.kind, name
        self._entries[name] = _Entry(params, impl)

    @contextlib.contextmanager
    def replaced(self, name: str, impl: Any) -> Iterator[None]:
        """Within the block, ``name`` is implemented by ``impl`` (same declaration): a benchmark's
        variant of a method, compared under the same name."""
        entry = self._entry(name)
        before = entry.impl
        entry.impl = impl
        try:
            yield
        finally:
            entry.impl = before

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests and interactive sessions that register a method twice)."""
        self._entries.pop(name, None)

    # looking up --------------------------------------------------------------------------
    def _ensure(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self.builtins is not None:
            importlib.import_module(self.builtins)
        load_entry_points(self.group)

    def params(self, name: str) -> type[Params]:
        """The declaration of ``name`` (nothing is imported but the declaration)."""
        return self._entry(name).params

    def _entry(self, name: str) -> _Entry:
        self._ensure()
        if name not in self._entries:
            raise UnknownMethod(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._entries))}")
        return self._entries[name]

    def __getitem__(self, name: str) -> Any:
        return self._entry(name).load()

    def __contains__(self, name: object) -> bool:
        self._ensure()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        self._ensure()
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        self._ensure()
        return len(self._entries)

    def build(self, spec: Any, params: Mapping[str, Any] | None = None, **kwargs: Any) -> T:
        """An instance: ``spec`` itself if it is one, else the method named (or the class given)
        built from its validated arguments."""
        if isinstance(spec, str):
            checked = self.params(spec).build(params, **kwargs)
            return self[spec](**checked)
        if isinstance(spec, type):
            return spec(**{**(params or {}), **kwargs})
        return spec

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self)})"


#: Extenders: how new units are initialised (:class:`clgrow.methods.extender.Extender`).
extenders: Registry[Any] = Registry("extender", "clgrow.extenders", "clgrow.methods")
#: Distributors: where new units go (:class:`clgrow.methods.distributor.Distributor`).
distributors: Registry[Any] = Registry("distributor", "clgrow.distributors", "clgrow.methods")
#: Plasticity methods: units reset at equal size (:class:`clgrow.methods.plasticity.PlasticityMethod`).
plasticity_methods: Registry[Any] = Registry("plasticity method", "clgrow.plasticity_methods", "clgrow.methods")
#: Continual-learning strategies (builders of Avalanche strategies, :mod:`clgrow.strategies.builders`).
strategies: Registry[Any] = Registry("strategy", "clgrow.strategies", "clgrow.strategies.declared")

#: Kind of method -> its registry (the kinds a run names).
REGISTRIES: dict[str, Registry[Any]] = {
    "extender": extenders,
    "distributor": distributors,
    "plasticity": plasticity_methods,
    "strategy": strategies,
}


@functools.cache
def _installed_entry_points() -> Any:
    """Every installed entry point, read once for all groups (each read scans every installed
    package: tens of milliseconds a registry otherwise); the first distribution of a name wins."""
    from importlib.metadata import entry_points

    return entry_points()


def load_entry_points(group: str) -> None:
    """Load every entry point of ``group`` (a broken one is named in a warning and skipped)."""
    for ep in _installed_entry_points().select(group=group):
        try:
            ep.load()
        except KeyError:  # the method was registered already (the module was imported first)
            continue
        except Exception as err:  # a broken third-party package must not break the toolkit
            warnings.warn(
                f"clgrow: entry point {ep.name!r} ({ep.value}) of group {group!r} could not be loaded: "
                f"{type(err).__name__}: {err}",
                stacklevel=2,
            )
