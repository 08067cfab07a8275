"""Run a comparison grid (locally in processes, or as Ray tasks), then tabulate and plot it.

Each cell writes ``DIR/cells/<strategy>__<growth>__seed<s>/`` with its own ``summary.json``;
a cell whose summary exists is not run again, so a restarted grid resumes. ``fixed-final``
cells run after their reference growth cells, at the widths those reached.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from clgrow.experiments.config import FIXED, ConfigError, GridConfig, RunConfig, parse_baseline
from clgrow.experiments.stats import LEVEL, interval, paired_difference
from clgrow.strategies.results import atomic_write_csv, atomic_write_text
from clgrow.strategies.summary import RunSummary

__all__ = [
    "run_grid",
    "grid_lock",
    "cell_dir",
    "aggregate",
    "markdown_table",
    "table_warnings",
    "load_cells",
    "write_outputs",
]

TABLE_COLUMNS = [
    ("final_accuracy", "final acc", True),
    ("learning_accuracy", "learning acc", True),
    ("average_forgetting", "forgetting", True),
    ("growth_disruption", "growth disruption", True),
    ("dead", "dead", True),
    ("dormant", "dormant", True),
    ("new_dead", "new dead", True),
    ("new_dormant", "new dormant", True),
    ("units", "hidden units", False),
    ("parameters", "params", False),
    ("growth_over_train", "growth / train time", False),
    ("train_tmacs", "train GMAC", False),
    ("growth_share", "growth share", True),
]
#: Columns that only a growing row has (a row without growth shows "—", as for disruption).
GROWTH_ONLY = ("growth_share", "growth_over_train")

#: Shown only when some row resets units.
RESET_COLUMNS = [("units_reset", "units reset", False)]
#: Shown only when some row prunes units.
PRUNE_COLUMNS = [("units_pruned", "units pruned", False), ("prune_disruption", "prune disruption", True)]


#: What tells a grid's rows apart besides strategy and growth, each with the value that leaves it
#: out of names, labels and tables (an axis is shown only where some row differs from it).
OPTIONAL_AXES = {"plasticity": "none", "prune": "none"}
#: How a non-default value reads in a cell name or a row label.
_AXIS_TAG = {"plasticity": "{}", "prune": "prune-{}"}


def _extras(get: Any) -> list[str]:
    return [_AXIS_TAG[a].format(get(a, d)) for a, d in OPTIONAL_AXES.items() if get(a, d) != d]


def row_key(r: dict[str, Any]) -> tuple[str, ...]:
    """A row's identity: strategy, growth and every optional axis."""
    return (r["strategy"], r["growth"], *(str(r.get(a, d)) for a, d in OPTIONAL_AXES.items()))


def row_label(r: dict[str, Any]) -> str:
    """``strategy/growth`` with the optional axes that differ from their default."""
    return "/".join([r["strategy"], r["growth"], *_extras(r.get)])


def shown_axes(rows: list[dict[str, Any]]) -> list[str]:
    """The optional axes some row sets to a non-default value (the columns a table shows)."""
    return [a for a, d in OPTIONAL_AXES.items() if any(r.get(a, d) != d for r in rows)]


def cell_name(cfg: RunConfig) -> str:
    """Directory name of a cell (the optional axes named only when not at their default)."""
    extras = "".join(f"__{e}" for e in _extras(lambda a, d: getattr(cfg, a)))
    return f"{cfg.strategy}__{cfg.growth_label}{extras}__seed{cfg.seed}"


def cell_dir(out: Path, cfg: RunConfig) -> Path:
    """Where a cell writes its results."""
    return out / "cells" / cell_name(cfg)


def _run_cell(
    cfg_dict: dict[str, Any], out_dir: str, hidden_sizes: list[int] | None, compute_of: dict[str, Any] | None = None
) -> RunSummary:
    """Worker entry point (plain data in and out, so it pickles for processes and Ray):
    ``hidden_sizes`` and ``compute_of`` (a reference summary) for the fixed-size baselines."""
    import warnings

    warnings.filterwarnings("ignore")
    from clgrow.experiments.console import quiet_avalanche_deprecations
    from clgrow.experiments.runner import run

    quiet_avalanche_deprecations()

    cfg = RunConfig(**cfg_dict)
    reference = None if compute_of is None else RunSummary.from_dict(compute_of)
    return run(cfg, out_dir, hidden_sizes=hidden_sizes, compute_of=reference)


def _reference(cfg: RunConfig) -> RunConfig:
    d = cfg.to_dict()
    d.update(growth=cfg.match_final_size, match_final_size=None, match_compute=False)
    return RunConfig(**d)


MANIFEST = "grid.json"


def _load(path: Path) -> RunSummary | None:
    """A cell's summary, or None when absent or unreadable (a crash mid-write, a foreign file):
    such a cell is simply not done."""
    f = path / "summary.json"
    if not f.is_file():
        return None
    try:
        return RunSummary.from_dict(json.loads(f.read_text()), where=str(f))
    except (json.JSONDecodeError, UnicodeDecodeError, ConfigError, TypeError) as err:
        print(f"clgrow: warning: {f} is unreadable ({err}); the cell counts as not done", file=sys.stderr)
        return None


def run_grid(
    grid: GridConfig,
    out: str | Path,
    backend: str = "local",
    workers: int = 2,
    ray_address: str | None = None,
    progress: bool = True,
) -> list[RunSummary]:
    """Run every cell not yet done; return all summaries in grid order."""
    out = Path(out)
    cells = grid.cells()
    first = [c for c in cells if not c.match_final_size]
    second = [c for c in cells if c.match_final_size]
    refs = {cell_name(_reference(c)): _reference(c) for c in second}
    for name, ref in refs.items():  # fixed-final needs its reference even if the grid lacks it
        if all(cell_name(c) != name for c in first):
            first.append(ref)
    out.mkdir(parents=True, exist_ok=True)
    listed = cells + [c for c in first if c not in cells]  # grid order (tables follow it), then extra references
    manifest = {"cells": [c.to_dict() for c in listed], "baseline": grid.baseline}
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1))
    submit = _make_submitter(backend, workers, ray_address, len(first) + len(second))
    try:
        done = _run_wave(first, out, lambda c: (None, None), submit, progress, "grid")

        def plan(c: RunConfig) -> tuple[list[int], dict[str, Any] | None]:
            ref = done.get(cell_name(_reference(c))) or _load(cell_dir(out, _reference(c)))
            assert ref is not None  # the first wave ran every reference cell
            return list(ref.final_hidden_sizes), (ref.to_dict() if c.match_compute else None)

        done.update(_run_wave(second, out, plan, submit, progress, "fixed-size"))
    finally:
        submit.close()
    return [done[cell_name(c)] for c in cells]


class _Submitter:
    def __init__(self, fn: Callable[..., Any], gather: Callable[[list[Any]], list[Any]], close: Callable[[], None]):
        self.fn, self.gather, self.close = fn, gather, close


@contextlib.contextmanager
def grid_lock(out: str | Path) -> Iterator[None]:
    """Hold ``out``'s lock while a grid runs and writes its outputs: a second ``compare`` on the
    same directory is refused (``ConfigError``) instead of racing the first over its cells. The
    lock is the operating system's (``flock``), so a killed run never leaves it held."""
    import fcntl

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".clgrow-lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise ConfigError(
                f"--out {out}: another clgrow compare ({holder}) is running a grid there; wait for "
                "it to finish, or use another directory"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _quiet_worker() -> None:
    """A worker ends when the grid ends it (SIGTERM, default action, no traceback) and leaves
    Ctrl-C to the grid process, which terminates it."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _make_submitter(backend: str, workers: int, ray_address: str | None, n: int) -> _Submitter:
    if backend == "ray":
        try:
            import ray
        except ImportError:
            raise SystemExit("clgrow: error: --backend ray needs Ray: pip install 'clgrow[ray]'") from None
        started = False
        if not ray.is_initialized():
            if ray_address:
                ray.init(address=ray_address, log_to_driver=False)
            else:
                ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False)
            started = True
        remote = ray.remote(num_cpus=1)(_run_cell)

        def close_ray() -> None:
            if started:
                ray.shutdown()

        return _Submitter(lambda *a: remote.remote(*a), lambda fs: ray.get(fs), close_ray)
    if backend != "local":
        raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}")
    if workers <= 1 or n <= 1:  # run lazily at gather time, so the progress bar moves cell by cell
        return _Submitter(lambda *a: lambda: _run_cell(*a), lambda fs: [f() for f in fs], lambda: None)
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_quiet_worker)

    def close() -> None:
        # Also reached when the grid is interrupted (Ctrl-C, SIGTERM): cells still training in the
        # workers must end with it, not go on as orphans; finished cells are on disk already.
        workers_now = list((pool._processes or {}).values())
        # shutdown() forgets the manager thread (typeshed mistypes the attribute: getattr)
        manager: threading.Thread | None = getattr(pool, "_executor_manager_thread", None)
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in workers_now:
            if proc.is_alive():
                proc.terminate()
        for proc in workers_now:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
        # The pool's manager thread closes its wake-up pipe when it sees the workers gone; the
        # interpreter's exit hook writes to that pipe, so it must find the thread finished, not
        # racing it (a 'Bad file descriptor' traceback after the interrupt message otherwise).
        if manager is not None:
            manager.join(timeout=10)

    return _Submitter(lambda *a: pool.submit(_run_cell, *a), lambda fs: [f.result() for f in fs], close)


def _run_wave(
    cells: list[RunConfig],
    out: Path,
    plan: Callable[[RunConfig], tuple[list[int] | None, dict[str, Any] | None]],
    submit: _Submitter,
    progress: bool,
    label: str,
) -> dict[str, RunSummary]:
    done: dict[str, RunSummary] = {}
    todo = []
    for c in cells:
        prev = _load(cell_dir(out, c))
        if prev is not None and _same_config(prev.config, c):
            done[cell_name(c)] = prev
        else:
            todo.append(c)
    if not todo:
        return done
    for c in todo:
        if c.threads is None:
            c.threads = 1  # one thread per cell: the cells themselves fill the cores
    futures = [submit.fn(c.to_dict(), str(cell_dir(out, c)), *plan(c)) for c in todo]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        # a bar only on a terminal: in a log file it is a line per refresh
        bar = tqdm(
            total=len(todo), desc=f"{label} cells", unit="cell", file=sys.stderr, disable=not sys.stderr.isatty()
        )
    results = []
    for fut in futures:  # gather one at a time so the bar moves
        results.extend(submit.gather([fut]))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    for c, s in zip(todo, results):
        done[cell_name(c)] = s
    return done


def _same_config(saved: dict[str, Any] | None, cfg: RunConfig) -> bool:
    """A finished cell counts as done when its configuration matches (thread count aside)."""
    if saved is None:
        return False
    want = cfg.to_dict()
    # a field added since the cell ran counts as its default there
    saved = {**{k: v for k, v in RunConfig().to_dict().items() if k not in saved}, **saved}
    return {k: v for k, v in saved.items() if k != "threads"} == {k: v for k, v in want.items() if k != "threads"}


def cell_row(s: RunSummary) -> dict[str, Any]:
    """One flat row of a cell summary (the columns of ``summary.csv``)."""
    train = s.train_seconds or math.nan
    return {
        "benchmark": s.benchmark,
        "strategy": s.strategy,
        "growth": s.growth,
        "plasticity": s.plasticity,
        "prune": s.prune,
        "seed": s.seed,
        "final_accuracy": s.final_accuracy,
        "learning_accuracy": s.learning_accuracy,
        "average_forgetting": s.average_forgetting,
        "growth_disruption": math.nan if s.mean_growth_disruption is None else s.mean_growth_disruption,
        "prune_disruption": math.nan if s.mean_prune_disruption is None else s.mean_prune_disruption,
        "dead": s.last("dead_fraction"),
        "dormant": s.last("dormant_fraction"),
        "new_dead": s.last("new_dead_fraction"),
        "new_dormant": s.last("new_dormant_fraction"),
        "units": sum(s.final_hidden_sizes),
        "hidden_sizes": "x".join(map(str, s.final_hidden_sizes)),
        "parameters": s.parameters,
        "train_seconds": s.train_seconds,
        "growth_seconds": s.growth_seconds,
        "growth_over_train": (s.growth_seconds / train) if train and not math.isnan(train) else math.nan,
        "units_reset": sum(s.units_reset),
        "units_pruned": sum(s.units_pruned),
        "train_tmacs": s.compute["train_macs"] / 1e12 if s.compute else math.nan,
        "growth_share": math.nan if s.growth_share is None else s.growth_share,
        "collapsed": s.collapsed,
    }


def aggregate(summaries: list[RunSummary]) -> list[dict[str, Any]]:
    """Per row (:func:`row_key`), in grid order: for every column its mean over seeds
    (``key``), sample std (``key_std``), the half-width of its 95 % Student-t interval
    (``key_ci``) and its value per seed (``key_by_seed``, for differences paired by seed)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for s in summaries:
        row = cell_row(s)
        groups.setdefault(row_key(row), []).append(row)
    out = []
    for ident, rows in groups.items():
        agg: dict[str, Any] = dict(zip(["strategy", "growth", *OPTIONAL_AXES], ident))
        agg["seeds"] = len(rows)
        agg["seed_list"] = sorted(r["seed"] for r in rows)
        agg["collapsed_seeds"] = sorted(r["seed"] for r in rows if r.get("collapsed"))
        agg["dropped"] = {}
        for key, _, _ in TABLE_COLUMNS + RESET_COLUMNS + PRUNE_COLUMNS:
            finite = [r[key] is not None and math.isfinite(float(r[key])) for r in rows]
            vals = [float(r[key]) for r, ok in zip(rows, finite) if ok]
            if vals and not all(finite):  # some seeds measured it, others gave no finite value
                agg["dropped"][key] = [r["seed"] for r, ok in zip(rows, finite) if not ok]
            agg[key] = statistics.fmean(vals) if vals else math.nan
            agg[key + "_std"] = statistics.stdev(vals) if len(vals) > 1 else (0.0 if vals else math.nan)
            agg[key + "_ci"] = interval(vals).half
            agg[key + "_by_seed"] = {r["seed"]: float(r[key]) for r, ok in zip(rows, finite) if ok}
        out.append(agg)
    return out


def table_warnings(rows: list[dict[str, Any]]) -> list[str]:
    """What a reader of :func:`markdown_table` must know: rows averaged over different seeds, and
    values left out of a mean because they were not finite."""
    labels = {key: label for key, label, _ in TABLE_COLUMNS + RESET_COLUMNS + PRUNE_COLUMNS}
    out = []
    seed_sets = {tuple(r["seed_list"]) for r in rows}
    if len(seed_sets) > 1:
        every = sorted(set().union(*seed_sets))
        short = [
            f"{row_label(r)} (seeds {', '.join(map(str, r['seed_list']))})" for r in rows if r["seed_list"] != every
        ]
        out.append(f"rows average different seeds (all seeds: {', '.join(map(str, every))}); short: {'; '.join(short)}")
    for r in rows:
        if r.get("collapsed_seeds"):
            out.append(
                f"{row_label(r)}: seed(s) {', '.join(map(str, r['collapsed_seeds']))} collapsed "
                "(chance-level accuracy with every unit dead, or a training loss that never decreased); "
                "they are in the means"
            )
        for key, seeds in r.get("dropped", {}).items():
            out.append(
                f"{row_label(r)}: {labels[key]} is not finite for seed(s) "
                f"{', '.join(map(str, seeds))}, left out of the mean"
            )
    return out


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Mean ± half-width of the 95 % interval over seeds (Student's t; one seed: the mean alone);
    fractions in %. A plasticity (prune) column and the units reset (pruned) appear when some
    row resets (prunes)."""
    columns = _columns(rows)
    keys = ["strategy", "growth", *shown_axes(rows), "seeds"]
    head = "| " + " | ".join(keys) + " | " + " | ".join(label for _, label, _ in columns) + " |"
    lines = [head, "|" + "---|" * (len(columns) + len(keys))]
    for r in rows:
        cells = []
        grows = r.get("growth") not in ("none", *FIXED)
        for key, _, pct in columns:
            m, ci = r[key], r[key + "_ci"]
            if m is None or math.isnan(m) or (key in GROWTH_ONLY and not grows):
                cells.append("—")  # not measured, or growth's own column of a row that does not grow
            elif pct:
                cells.append(f"{100 * m:.1f}" + ("" if math.isnan(ci) else f" ± {100 * ci:.1f}"))
            elif key == "growth_over_train":
                cells.append(f"{m:.2f}")
            elif key == "train_tmacs":  # in 10^9: 2.3, not 0.00234 or 4.23e-05
                cells.append(f"{1000 * m:,.1f}")
            else:
                cells.append(f"{m:.0f}")
        lines.append("| " + " | ".join(str(r.get(k, "none")) for k in keys) + " | " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: Columns compared with a baseline row, paired by seed.
PAIRED_COLUMNS = [
    ("final_accuracy", "Δ final acc"),
    ("learning_accuracy", "Δ learning acc"),
    ("average_forgetting", "Δ forgetting"),
    ("dormant", "Δ dormant"),
]


def _columns(rows: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    axes = shown_axes(rows)
    return (
        TABLE_COLUMNS
        + (RESET_COLUMNS if "plasticity" in axes else [])
        + (PRUNE_COLUMNS if "prune" in axes or any(r.get("units_pruned", 0) > 0 for r in rows) else [])
    )


def paired_rows(rows: list[dict[str, Any]], baseline: str) -> list[dict[str, Any]]:
    """For every row but the baseline, its difference to the baseline row of the same strategy
    (:func:`clgrow.experiments.config.parse_baseline`), paired by seed: ``key`` (an
    :class:`~clgrow.experiments.stats.Interval`) per column of :data:`PAIRED_COLUMNS`."""
    strategy, growth, plasticity = parse_baseline(baseline)
    base = {
        r["strategy"]: r
        for r in rows
        if r["growth"] == growth
        and r.get("plasticity", "none") == plasticity
        and r.get("prune", "none") == "none"
        and strategy in (None, r["strategy"])
    }
    out = []
    for r in rows:
        b = base.get(r["strategy"])
        if b is None or b is r:
            continue
        diff: dict[str, Any] = {
            "strategy": r["strategy"],
            "growth": r["growth"],
            **{a: r.get(a, d) for a, d in OPTIONAL_AXES.items()},
            "baseline": row_label(b),
        }
        for key, _ in PAIRED_COLUMNS:
            diff[key] = paired_difference(r[key + "_by_seed"], b[key + "_by_seed"])
        out.append(diff)
    return out


def paired_table(diffs: list[dict[str, Any]]) -> str:
    """Markdown: each difference in points (%) with its interval; ``*`` where it excludes zero."""
    keys = ["strategy", "growth", *shown_axes(diffs), "baseline", "seeds"]
    head = "| " + " | ".join(keys) + " | " + " | ".join(label for _, label in PAIRED_COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(keys) + len(PAIRED_COLUMNS))]
    for d in diffs:
        cells = []
        for key, _ in PAIRED_COLUMNS:
            iv = d[key]
            if math.isnan(iv.mean):
                cells.append("—")
            elif math.isnan(iv.half):
                cells.append(f"{100 * iv.mean:+.1f}")
            else:
                mark = " *" if iv.excludes_zero else ""
                cells.append(f"{100 * iv.mean:+.1f} [{100 * iv.low:+.1f}, {100 * iv.high:+.1f}]{mark}")
        seeds = max(d[key].n for key, _ in PAIRED_COLUMNS)
        lines.append("| " + " | ".join(str(d[k]) for k in keys[:-1]) + f" | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table_csv_rows(rows: list[dict[str, Any]], diffs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The aggregated table as flat rows (``table.csv``): per column its mean, std, interval bounds,
    and, where a baseline was named, the paired difference with its bounds."""
    columns = _columns(rows)
    by_label = {row_key(d): d for d in diffs}
    out = []
    for r in rows:
        flat: dict[str, Any] = {
            "strategy": r["strategy"],
            "growth": r["growth"],
            **{a: r.get(a, d) for a, d in OPTIONAL_AXES.items()},
            "seeds": r["seeds"],
        }
        for key, _, _ in columns:
            flat[key] = r[key]
            flat[key + "_std"] = r[key + "_std"]
            flat[key + "_ci_low"] = r[key] - r[key + "_ci"]
            flat[key + "_ci_high"] = r[key] + r[key + "_ci"]
        d = by_label.get(row_key(r))
        for key, _ in PAIRED_COLUMNS if diffs else []:
            iv = d[key] if d is not None else None
            flat[f"diff_{key}"] = iv.mean if iv is not None else math.nan
            flat[f"diff_{key}_ci_low"] = iv.low if iv is not None else math.nan
            flat[f"diff_{key}_ci_high"] = iv.high if iv is not None else math.nan
        out.append(flat)
    return out


def grid_baseline(out: str | Path) -> str | None:
    """The baseline the grid last run into ``out`` was compared with (its manifest), if any."""
    try:
        value = json.loads((Path(out) / MANIFEST).read_text()).get("baseline")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def load_cells(out: str | Path) -> tuple[list[RunSummary], list[str]]:
    """The finished cells of the grid last run into ``out`` (its ``grid.json``), and the names
    of the cell directories left out (another configuration, unfinished or unreadable).

    Without a manifest (a grid written before there was one) every readable cell counts.
    """
    out = Path(out)
    dirs = sorted(p for p in out.glob("cells/*") if p.is_dir())  # unfinished cells (no summary) included
    manifest = out / MANIFEST
    if not manifest.is_file():
        loaded = [(d, _load(d)) for d in dirs]
        return [s for _, s in loaded if s is not None], [d.name for d, s in loaded if s is None]
    try:
        wanted = [RunConfig.from_dict(c, where=str(manifest)) for c in json.loads(manifest.read_text())["cells"]]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ConfigError(f"{manifest}: not a clgrow grid manifest ({err})") from None
    summaries, used = [], set()
    for cfg in wanted:
        s = _load(cell_dir(out, cfg))
        if s is not None and _same_config(s.config, cfg):
            summaries.append(s)
            used.add(cell_name(cfg))
    return summaries, [d.name for d in dirs if d.name not in used]


def write_outputs(summaries: list[RunSummary], out: str | Path, baseline: str | None = None) -> str:
    """Write ``summary.csv`` (one row per cell), ``table.csv`` and ``table.md`` (one row per
    strategy × growth × plasticity: means with 95 % intervals over seeds, and with ``baseline``
    the differences to it paired by seed) and comparison figures; return the tables."""
    from clgrow.experiments.plots import plot_grid

    out = Path(out)
    rows = [cell_row(s) for s in summaries]
    atomic_write_csv(out / "summary.csv", rows, list(rows[0]))
    agg = aggregate(summaries)
    diffs = paired_rows(agg, baseline) if baseline else []
    table = markdown_table(agg)
    if diffs:
        table += (
            f"\n\nDifference to {baseline} paired by seed, in points, with its {100 * LEVEL:.0f} % interval "
            "(* where the interval excludes 0):\n\n" + paired_table(diffs)
        )
    elif baseline:
        table += f"\n\n(no row of the grid is the baseline {baseline})"
    flat = table_csv_rows(agg, diffs)
    atomic_write_csv(out / "table.csv", flat, list(flat[0]))
    notes = table_warnings(agg)
    for note in notes:
        print(f"clgrow: warning: {note}", file=sys.stderr)
    atomic_write_text(out / "table.md", table + "\n" + "".join(f"\nWarning: {n}\n" for n in notes))
    plot_grid(summaries, out / "figures")
    return table
