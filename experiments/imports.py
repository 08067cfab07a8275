"""The modules a run names (``--import``, ``imports = [...]``), imported so their methods and
strategies register with clgrow's registries before any name is checked."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from clgrow.errors import ConfigError

__all__ = ["import_modules"]


def _from_path(path: str, where: str) -> str:
    """The module name of a ``.py`` file (or a package folder) given by path, its folder put on
    ``sys.path``; refused, naming it, when it is not there."""
    p = Path(path).expanduser().resolve()
    if p.is_dir() and (p / "__init__.py").is_file():
        folder, name = p.parent, p.name
    elif p.is_file() and p.suffix == ".py":
        folder, name = p.parent, p.stem
    else:
        raise ConfigError(f"{where}: {path!r} is neither a .py file nor a package folder")
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return name


def import_modules(modules: list[str] | tuple[str, ...], where: str = "imports") -> None:
    """Import the modules a run names (``--import``, ``imports = [...]``): their methods register.
    A name is imported as Python would from the working directory; a path to a ``.py`` file or a
    package folder imports that file or package.

    Raises :class:`ConfigError` naming a module that cannot be imported.
    """
    cwd = str(Path.cwd())
    if cwd not in sys.path:  # as `python -m` does: a module or package in the working directory imports
        sys.path.insert(0, cwd)
    for module in modules:
        if not isinstance(module, str) or not module.strip():
            raise ConfigError(f"{where}: module names must be non-empty strings (got {module!r})")
        if module.endswith(".py") or "/" in module or os.sep in module:
            module = _from_path(module, where)  # a file path: its folder becomes importable
        if module in sys.modules:
            continue
        try:
            importlib.import_module(module)
        except KeyError as err:  # registered twice
            raise ConfigError(f"{where}: {module!r}: {err.args[0] if err.args else err}") from None
        except Exception as err:  # the module is the user's: name it and what it raised, no traceback
            raise ConfigError(f"{where}: cannot import {module!r} ({type(err).__name__}: {err})") from None
