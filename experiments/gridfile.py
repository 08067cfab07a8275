"""A grid of runs from a TOML file: its axes, its shared settings, its baseline (no torch until the end).

::

    [grid]
    benchmark = "split-mnist-5k"
    strategies = ["naive", "replay"]
    growth = ["none", "fixed-final", "random-uniform", "swe-uniform", "swe-svod"]
    seeds = [0, 1]
    plasticity = ["none", "redo"]   # optional axes: plasticity methods, prune methods
    prune = ["none", "swe"]
    baseline = "fixed-final"        # every row compared with this row, paired by seed

    [run]                      # any RunConfig setting, shared by every cell (docs/cli.md)
    hidden_sizes = [64, 64]

    [run.grow]                 # any GrowthConfig field but the method (that is the growth axis)
    neurons_per_experience = 32

    [strategy.replay]          # hyperparameters of one strategy
    mem_size = 200

    [plasticity.redo]          # arguments of one plasticity method
    tau = 0.1

``fixed-final`` is the fair fixed-size baseline: no growth, at the final widths reached by the
growth named in ``match_growth`` (default ``swe-svod``) for the same strategy and seed.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clgrow.errors import ConfigError, GrowthError
from clgrow.experiments.config import FIXED, FIXED_COMPUTE, FIXED_SPLIT, MAX_SEED, PRUNE_CHOICES, RunConfig
from clgrow.experiments.imports import import_modules
from clgrow.experiments.rules import check_plasticity, check_strategy_kwargs, inapplicable
from clgrow.registry import plasticity_methods, strategies
from clgrow.strategies.declared import traits
from clgrow.strategies.schedule import growth_methods, parse_growth

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["GridConfig", "Baseline", "parse_baseline", "load_grid", "AXES"]

#: A grid's axes besides seeds: the ``[grid]`` key and the cell's field each sets.
AXES = {"strategies": "strategy", "growth": "growth", "plasticity": "plasticity", "prune": "prune"}
#: Run settings a grid may give in ``[grid]`` as well as in ``[run]``.
_SHARED = ("benchmark", "n_experiences", "task_labels", "data_root", "class_order_seed", "imports", "loggers")
_PRUNE_TAG = "prune-"


@dataclass(frozen=True)
class Baseline:
    """The row every other row is compared with (``[STRATEGY/]GROWTH[/PLASTICITY][/prune-METHOD]``,
    a row's label). Each row is compared with the baseline row of its own strategy (a named
    strategy: that strategy's rows only); an axis it does not name pairs at each row's own value."""

    strategy: str | None
    growth: str
    plasticity: str | None = None
    prune: str | None = None

    def matches(self, row: dict[str, Any], of: dict[str, Any]) -> bool:
        """Whether ``row`` is the baseline of ``of`` (same strategy and unnamed axes as ``of``)."""
        return (
            row["strategy"] == of["strategy"]
            and self.strategy in (None, of["strategy"])
            and row["growth"] == self.growth
            and row.get("plasticity", "none") == (self.plasticity or of.get("plasticity", "none"))
            and row.get("prune", "none") == (self.prune or of.get("prune", "none"))
        )


def parse_baseline(text: str) -> Baseline:
    """The :class:`Baseline` a text names (a row's label, its strategy optional)."""
    usage = f"baseline: give [STRATEGY/]GROWTH[/PLASTICITY][/prune-METHOD] (got {text!r})"
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(usage)
    parts = [p.strip() for p in text.split("/")]
    strategy = parts.pop(0) if parts[0] in strategies else None
    prune = None
    if parts and parts[-1].startswith(_PRUNE_TAG):
        prune = parts.pop()[len(_PRUNE_TAG) :]
    if not 1 <= len(parts) <= 2 or not all(parts) or prune == "":
        raise ConfigError(usage)
    return Baseline(strategy, parts[0], parts[1] if len(parts) == 2 else None, prune)


@dataclass(frozen=True)
class GridConfig:
    """A grid of runs: strategies x growth x plasticity x prune x seeds over one shared RunConfig."""

    base: RunConfig
    strategies: list[str]
    growth: list[str]
    seeds: list[int]
    strategy_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    match_growth: str = "swe-svod"
    plasticity: list[str] = field(default_factory=lambda: ["none"])
    plasticity_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    prune: list[str] = field(default_factory=lambda: ["none"])
    baseline: str | None = None

    def check_baseline(self, where: str = "grid.baseline") -> None:
        """Refuse a baseline that names no row of this grid."""
        if self.baseline is None:
            return
        try:
            b = parse_baseline(self.baseline)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        for value, axis in (
            (b.strategy, "strategies"),
            (b.growth, "growth"),
            (b.plasticity, "plasticity"),
            (b.prune, "prune"),
        ):
            if value is not None and value not in getattr(self, axis):
                raise ConfigError(f"{where}: {value!r} is not in grid.{axis} {getattr(self, axis)}")

    def cells(self) -> list[RunConfig]:
        """One RunConfig per cell (strategy x growth x plasticity x prune x seed), in that order.
        Each is checked but for settings it ignores: :func:`load_grid` refuses a shared setting
        that no cell uses."""
        out = []
        for strategy in self.strategies:
            reference = traits(strategy).reference
            for growth in self.growth:
                for plasticity in self.plasticity:
                    for prune in self.prune:
                        if reference and (growth, plasticity, prune) != ("none", "none", "none"):
                            continue  # reference rows (joint, pnn) exist without growth, resets or pruning only
                        for seed in self.seeds:
                            out.append(self._cell(strategy, growth, plasticity, prune, seed))
        return out

    def _cell(self, strategy: str, growth: str, plasticity: str, prune: str, seed: int) -> RunConfig:
        fixed = growth in FIXED
        return dataclasses.replace(
            self.base,
            strategy=strategy,
            seed=seed,
            plasticity=plasticity,
            prune=prune,
            strategy_kwargs=dict(self.strategy_kwargs.get(strategy, {})),
            plasticity_kwargs=dict(self.plasticity_kwargs.get(plasticity, {})),
            growth="none" if fixed else growth,
            match_final_size=self.match_growth if fixed else None,
            match_compute=growth == FIXED_COMPUTE,
            match_split=growth == FIXED_SPLIT,
        ).validate(methods=False, applicable=False)

    def unused_settings(self, cells: list[RunConfig]) -> list[tuple[str, str]]:
        """``(setting, why)`` for each shared setting that every cell ignores."""
        per_cell = [dict(inapplicable(c)) for c in cells]
        common = set.intersection(*(set(p) for p in per_cell)) if per_cell else set()
        return [(name, per_cell[0][name]) for name in sorted(common)]


def _cell_key(cfg: RunConfig) -> str:
    """A cell's configuration without its seed (what the checks that build something read)."""
    return repr({k: v for k, v in cfg.to_dict().items() if k != "seed"})


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {err.start}: {err.reason}); TOML is UTF-8") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read (arrays or tables within each other)") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read ({err.strerror or err})") from None


def _check_axes(grid: dict[str, Any]) -> None:
    for key in ("strategies", "growth", "seeds", "plasticity", "prune"):
        if key not in grid:
            raise ConfigError(f"grid.{key}: missing (a list)")
        if not isinstance(grid[key], list) or not grid[key]:
            raise ConfigError(f"grid.{key}: must be a non-empty list (got {grid[key]!r})")
        if not all(isinstance(v, (int, str)) for v in grid[key]):
            raise ConfigError(f"grid.{key}: entries must be names or integers (got {grid[key]!r})")
        repeated = sorted({str(v) for v in grid[key] if grid[key].count(v) > 1})
        if repeated:
            raise ConfigError(f"grid.{key}: {', '.join(repeated)} listed more than once (each cell runs once)")
    for s in grid["strategies"]:
        if s not in strategies:
            raise ConfigError(f"grid.strategies: unknown strategy {s!r}; known: {', '.join(strategies)}")
    for g in grid["growth"]:
        if g not in FIXED:
            try:
                growth_methods(g)
            except ConfigError as err:
                raise ConfigError(f"grid.growth: {err}") from None
    same: dict[str, str] = {}  # an alias and its spelled-out name run the same cells twice
    for g in grid["growth"]:
        if g not in FIXED:
            key = repr(growth_methods(g))
            if key in same:
                raise ConfigError(
                    f"grid.growth: {same[key]!r} and {g!r} name the same growth method (each cell would run "
                    "twice under two labels); keep one"
                )
            same[key] = g
    for s in grid["seeds"]:
        if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s <= MAX_SEED:
            raise ConfigError(f"grid.seeds: seeds must be integers in [0, {MAX_SEED}] (got {s!r})")
    for name in grid["plasticity"]:
        if name != "none" and name not in plasticity_methods:
            raise ConfigError(
                f"grid.plasticity: unknown plasticity method {name!r}; known: none, {', '.join(plasticity_methods)}"
            )
    for name in grid["prune"]:
        if name not in PRUNE_CHOICES:
            raise ConfigError(f"grid.prune: unknown prune method {name!r}; known: {', '.join(PRUNE_CHOICES)}")


def load_grid(path: str | Path, imports: list[str] | None = None, data_root: str | None = None) -> GridConfig:
    """Read and validate a grid TOML file; ``imports`` are modules to import first, next to its
    ``imports`` key (a command line's ``--import``); ``data_root`` (a command line's
    ``--data-root``) replaces the file's before anything is validated."""
    path = Path(path)
    data = _read(path)
    sections = ("grid", "run", "strategy", "plasticity")
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(unknown)}; known: {', '.join(sections)}")
    for section in sections:
        if not isinstance(data.get(section, {}), dict):
            raise ConfigError(f"{path}: [{section}] must be a table (got {data[section]!r})")
    for section, what in (("strategy", "hyperparameters"), ("plasticity", "arguments")):
        for name, tbl in data.get(section, {}).items():
            if not isinstance(tbl, dict):
                raise ConfigError(f"{section}.{name}: must be a table of {what} (got {tbl!r})")
    grid = dict(data.get("grid", {}))
    allowed = {*AXES, "seeds", "match_growth", "baseline", *_SHARED}
    unknown = sorted(set(grid) - allowed)
    if unknown:
        raise ConfigError(f"grid: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")
    run = dict(data.get("run", {}))
    if data_root is not None:
        grid.pop("data_root", None)
        run["data_root"] = data_root
    for key in _SHARED:
        if key in grid:
            if key in run and run[key] != grid[key]:
                raise ConfigError(f"{key}: set in [grid] ({grid[key]!r}) and in [run] ({run[key]!r}); keep one")
            run[key] = grid.pop(key)
    for key, axis in (
        *((field_, f"grid.{axis}") for axis, field_ in AXES.items()),
        ("seed", "grid.seeds"),
        ("plasticity_kwargs", "[plasticity.NAME] tables"),
        ("strategy_kwargs", "[strategy.NAME] tables"),
    ):
        if key in run:
            raise ConfigError(f"run.{key}: a grid sets it per cell from {axis}; remove it from [run]")
    named = run.get("imports", [])
    if not isinstance(named, list):
        raise ConfigError(f"grid.imports: must be a list of module names (got {named!r})")
    run["imports"] = [*named, *(m for m in imports or [] if m not in named)]
    import_modules(run["imports"], where="grid.imports")  # a user's methods and strategies, before names are checked
    grid.setdefault("plasticity", ["none"])
    grid.setdefault("prune", ["none"])
    _check_axes(grid)
    plasticity_kwargs = data.get("plasticity", {})
    for name in plasticity_kwargs:
        if name not in plasticity_methods:
            raise ConfigError(f"plasticity.{name}: unknown plasticity method; known: {', '.join(plasticity_methods)}")
        check_plasticity(name, plasticity_kwargs[name], where=f"plasticity.{name}")
    for name in plasticity_kwargs:
        if name not in grid["plasticity"]:
            raise ConfigError(
                f"plasticity.{name}: applies to no cell of this grid (grid.plasticity is {grid['plasticity']}); "
                "remove the table or add the method to the axis"
            )
    strategy_kwargs = data.get("strategy", {})
    for name in strategy_kwargs:
        if name not in strategies:
            raise ConfigError(f"strategy.{name}: unknown strategy; known: {', '.join(strategies)}")
        if name not in grid["strategies"]:
            raise ConfigError(
                f"strategy.{name}: applies to no cell of this grid (grid.strategies is {grid['strategies']}); "
                "remove the table or add the strategy to the axis"
            )
        check_strategy_kwargs(
            name, strategy_kwargs[name], [f.name for f in dataclasses.fields(RunConfig)], where=f"strategy.{name}"
        )
    # the axes set each cell's method: the shared settings are checked against every cell below
    base = RunConfig.from_dict({**run, "growth": "none"}, where="run", methods=False, applicable=False)
    match = grid.get("match_growth", GridConfig.match_growth)
    try:
        match_method = growth_methods(match)
    except ConfigError as err:
        raise ConfigError(f"grid.match_growth: {err}") from None
    if match_method is None:
        raise ConfigError("grid.match_growth: must name a growth method, not 'none'")
    out = GridConfig(
        base,
        list(grid["strategies"]),
        list(grid["growth"]),
        list(grid["seeds"]),
        strategy_kwargs,
        match,
        list(grid["plasticity"]),
        plasticity_kwargs,
        list(grid["prune"]),
        grid.get("baseline"),
    )
    out.check_baseline()
    cells = out.cells()
    if not cells:
        raise ConfigError(
            f"{path}: the grid's axes leave no cell to run (strategies {out.strategies}, growth "
            f"{out.growth}, plasticity {out.plasticity}, prune {out.prune}: reference strategies run with "
            "growth, plasticity and prune 'none' only)"
        )
    unused = out.unused_settings(cells)
    if unused:
        name, why = unused[0]
        raise ConfigError(f"run.{name}: applies to no cell of this grid: {why}; remove it")
    # what imports torch last (the device, models and budgets, Avalanche's own checks), so that every
    # other mistake answers at once; once per cell but its seed, which none of them reads
    from clgrow.experiments.rules import check_methods

    built: set[str] = set()  # a strategy's hyperparameters are built by Avalanche once, not per cell
    for cell in {_cell_key(c): c for c in cells}.values():
        check_methods(cell if cell.strategy not in built else dataclasses.replace(cell, strategy_kwargs={}))
        built.add(cell.strategy)
    for key, names in (("grid.growth", [g for g in out.growth if g not in FIXED]), ("grid.match_growth", [match])):
        for g in names:
            try:
                parse_growth(g)
            except GrowthError as err:
                raise ConfigError(f"{key}: {err}") from None
    return out
