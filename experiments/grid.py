"""Run a comparison grid (locally in processes, or as Ray tasks), then tabulate and plot it.

Each cell writes ``DIR/cells/<strategy>__<growth>__seed<s>/`` with its own ``summary.json``;
a cell whose summary exists is not run again, so a restarted grid resumes. ``fixed-final``
cells run after their reference growth cells, at the widths those reached.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from clgrow.errors import ConfigError
from clgrow.experiments.config import RunConfig
from clgrow.experiments.errors import CellFailed
from clgrow.experiments.gridfile import GridConfig
from clgrow.experiments.tables import axis_tags
from clgrow.strategies.results import atomic_write_text
from clgrow.strategies.summary import RunSummary

__all__ = [
    "run_grid",
    "grid_lock",
    "cell_dir",
    "cell_name",
    "load_cells",
    "grid_baseline",
]


def cell_name(cfg: RunConfig) -> str:
    """Directory name of a cell (the optional axes named only when not at their default)."""
    extras = "".join(f"__{e}" for e in axis_tags(lambda a, d: getattr(cfg, a)))
    return f"{cfg.strategy}__{cfg.growth_label}{extras}__seed{cfg.seed}"


def cell_dir(out: Path, cfg: RunConfig) -> Path:
    """Where a cell writes its results."""
    return out / "cells" / cell_name(cfg)


def _run_cell(
    cfg_dict: dict[str, Any], out_dir: str, hidden_sizes: list[int] | None, reference: dict[str, Any] | None = None
) -> RunSummary:
    """Worker entry point (plain data in and out, so it pickles for processes and Ray):
    ``hidden_sizes`` and ``reference`` (the growth run's summary) for the fixed-size baselines."""
    import warnings

    warnings.filterwarnings("ignore")
    from clgrow.experiments.console import quiet_avalanche_deprecations
    from clgrow.experiments.runner import run

    quiet_avalanche_deprecations()

    # the cell was checked with its grid; a shared setting another cell uses is not refused here
    plan = RunConfig(**cfg_dict).resolve(applicable=False)
    matched = None if reference is None else RunSummary.from_dict(reference)
    return run(plan, out_dir, hidden_sizes=hidden_sizes, reference=matched)


def _reference(cfg: RunConfig) -> RunConfig:
    assert cfg.match_final_size is not None
    return dataclasses.replace(
        cfg, growth=cfg.match_final_size, match_final_size=None, match_compute=False, match_split=False
    )


MANIFEST = "grid.json"


def _load(path: Path) -> RunSummary | None:
    """A cell's summary, or None when absent or unreadable (a crash mid-write, a foreign file):
    such a cell is simply not done."""
    f = path / "summary.json"
    if not f.is_file():
        return None
    try:
        summary = RunSummary.from_dict(json.loads(f.read_text()), where=str(f))
    except (json.JSONDecodeError, UnicodeDecodeError, ConfigError, TypeError) as err:
        print(f"clgrow: warning: {f} is unreadable ({err}); the cell counts as not done", file=sys.stderr)
        return None
    if summary.config.get("model") == "resnet" and summary.versions.get("clgrow", "").startswith("0.1"):
        # its widths are the blocks' inner channels only: they describe no model of this version
        raise ConfigError(
            f"{f} was written by clgrow {summary.versions['clgrow']}, whose ResNet grew only its blocks' inner "
            "channels; this version grows its residual streams too, so the cell cannot be resumed or compared: "
            "run the grid again into a new --out"
        )
    return summary


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
            return list(ref.final_hidden_sizes), (ref.to_dict() if c.match_compute or c.match_split else None)

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
    # one thread per cell: the cells themselves fill the cores
    todo = [c if c.threads is not None else dataclasses.replace(c, threads=1) for c in todo]
    futures = [submit.fn(c.to_dict(), str(cell_dir(out, c)), *plan(c)) for c in todo]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        # a bar only on a terminal: in a log file it is a line per refresh
        bar = tqdm(
            total=len(todo), desc=f"{label} cells", unit="cell", file=sys.stderr, disable=not sys.stderr.isatty()
        )
    results = []
    for c, fut in zip(todo, futures):  # gather one at a time so the bar moves
        try:
            results.extend(submit.gather([fut]))
        except Exception as err:  # a worker killed (out of memory, a signal) or a cell that failed
            if bar is not None:
                bar.close()
            raise CellFailed(cell_name(c), err) from err
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
        wanted = [
            RunConfig.from_dict(c, where=str(manifest), applicable=False)
            for c in json.loads(manifest.read_text())["cells"]
        ]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ConfigError(f"{manifest}: not a clgrow grid manifest ({err})") from None
    summaries, used = [], set()
    for cfg in wanted:
        s = _load(cell_dir(out, cfg))
        if s is not None and _same_config(s.config, cfg):
            summaries.append(s)
            used.add(cell_name(cfg))
    return summaries, [d.name for d in dirs if d.name not in used]
