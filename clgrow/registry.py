"""Name -> class registries for extenders and distributors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(dict[str, type], Generic[T]):
    """A ``dict`` of name -> class with a ``register`` decorator and a clear lookup error."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator adding ``cls`` under ``name``."""

        def deco(cls: type[T]) -> type[T]:
            if name in self:
                raise KeyError(f"{self.kind} {name!r} is already registered")
            self[name] = cls
            cls.name = name  # type: ignore[attr-defined]
            return cls

        return deco

    def __missing__(self, key: str) -> type:
        raise KeyError(f"unknown {self.kind} {key!r}; known: {', '.join(sorted(self))}")

    def build(self, spec: Any, **kwargs: Any) -> T:
        """Return ``spec`` if it is an instance, else instantiate it by name or class."""
        if isinstance(spec, str):
            return self[spec](**kwargs)
        if isinstance(spec, type):
            return spec(**kwargs)
        return spec
