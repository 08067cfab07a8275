"""What each ``clgrow`` command does once its arguments are parsed (:mod:`clgrow.experiments.cli`).

Nothing here imports torch or Avalanche at import time: a command imports them only once its
configuration is valid.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from clgrow.errors import ConfigError
from clgrow.experiments.capacity import MODELS

__all__ = [
    "run_command",
    "compare_command",
    "plot_command",
    "list_command",
    "flag_reference",
    "fail",
    "check_out",
    "check_out_name",
]


def fail(message: str) -> int:
    """Print a usage error naming the problem; the exit code 2."""
    print(f"clgrow: error: {message}", file=sys.stderr)
    return 2


def check_out(path: Path, create: bool = True) -> None:
    """Refuse an output place that cannot take results, before anything trains (``create=False``,
    as ``--check`` does: look, without making the directory)."""
    try:
        if path.exists() and not path.is_dir():
            raise ConfigError(f"--out {path}: exists and is not a directory")
        if not create:
            existing = next((p for p in (path, *path.absolute().parents) if p.exists()), None)
            if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
                raise ConfigError(f"--out {path}: cannot write there ({existing} is not a writable directory)")
            return
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".clgrow-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"--out {path}: cannot write there ({err.strerror or err})") from None


def check_out_name(text: str) -> None:
    """Refuse an empty ``--out`` (``Path("")`` is the current directory), even with ``--check``."""
    if not text.strip():
        raise ConfigError("--out: give a directory (got an empty path, which would write into the current directory)")


def run_command(args: argparse.Namespace, fields: dict[str, Any]) -> int:
    """``clgrow run``: resolve the run (and, for a matched fixed model, its reference) once, then
    train; ``--check`` stops after the same resolve."""
    from clgrow.experiments.config import RunConfig

    check_out_name(args.out)
    out = Path(args.out)
    verbose = not args.quiet
    matched = args.match_final_size or args.match_final_compute
    if matched and fields.get("growth", RunConfig.settings()["growth"].default) == "none":
        return fail("--match-final-size/--match-final-compute need --growth naming the growth run to match")
    # validated and built once here, at the edge: the run, or the reference run of --match-final-size
    plan = RunConfig(**fields).resolve()
    cfg = plan.config
    fixed = None
    if matched:
        fixed = dataclasses.replace(
            cfg, match_final_size=cfg.growth, growth="none", match_compute=bool(args.match_final_compute)
        ).resolve()
    from clgrow.experiments.catalog import SUGGESTED_EPOCHS

    suggested = SUGGESTED_EPOCHS.get(cfg.benchmark)
    if suggested and cfg.train_epochs < suggested and verbose:
        print(
            f"clgrow: note: {cfg.benchmark} learns little at {cfg.train_epochs} epoch(s) per experience; "
            f"--epochs {suggested} learns it",
            file=sys.stderr,
        )
    check_out(out, create=not args.check)
    if args.check:  # the run's own preparation: its data, its model, its first batch and sites
        from clgrow.experiments.runner import prepare

        _, _, _, found = prepare(plan)
        print(json.dumps(cfg.to_dict(), indent=1))
        if found is not None and cfg.model not in MODELS:  # what will grow, before anything trains
            print(f"{cfg.model}: {found.describe()}", file=sys.stderr)
        return 0
    from clgrow.experiments.runner import run  # Avalanche: only once everything is valid

    if fixed is not None:
        print(f"reference run ({cfg.growth}) to find the final widths:", flush=True)
        ref = run(plan, out / "reference", verbose=verbose, progress=verbose)
        print(f"fixed model at {ref.final_hidden_sizes}:", flush=True)
        summary = run(
            fixed,
            out,
            hidden_sizes=ref.final_hidden_sizes,
            reference=ref,
            verbose=verbose,
            progress=verbose,
        )
        if args.match_final_compute:
            print(
                f"fixed model trained {summary.train_epochs} epoch(s) per experience to match the growth run's "
                "multiply-adds",
                flush=True,
            )
    else:
        summary = run(plan, out, verbose=verbose, progress=verbose)
    print(
        f"final stream accuracy {summary.final_accuracy:.4f}, average forgetting "
        f"{summary.average_forgetting:.4f}, hidden sizes {summary.final_hidden_sizes}; wrote {out}"
    )
    if summary.collapsed:
        print(
            "clgrow: warning: the run collapsed (chance-level accuracy with every unit dead, or a training loss "
            "that never decreased); summary.json says so (collapsed: true)",
            file=sys.stderr,
        )
    return 0


def compare_command(args: argparse.Namespace) -> int:
    """``clgrow compare``: load and check the grid, list its cells (``--check``) or run them."""
    if not Path(args.config).is_file():
        return fail(f"config file not found: {args.config}")
    from clgrow.experiments.gridfile import load_grid

    grid = load_grid(args.config, imports=args.imports, data_root=args.data_root)
    if args.device is not None:
        base = dataclasses.replace(grid.base, device=args.device).validate(applicable=False)
        grid = dataclasses.replace(grid, base=base)
    if args.workers < 1:
        return fail(f"--workers must be >= 1 (got {args.workers})")
    if args.baseline is not None:
        grid = dataclasses.replace(grid, baseline=args.baseline)
        grid.check_baseline("--baseline")
    check_out_name(args.out)
    out = Path(args.out)
    check_out(out, create=not args.check)
    if args.check:
        for cell in grid.cells():
            print(
                f"{cell.strategy} / {cell.growth_label} / plasticity {cell.plasticity} / prune {cell.prune} "
                f"/ seed {cell.seed}"
            )
        return 0
    from clgrow.experiments.grid import grid_lock, run_grid  # Avalanche: only once everything is valid
    from clgrow.experiments.tables import write_outputs

    with grid_lock(out):
        summaries = run_grid(
            grid, out, backend=args.backend, workers=args.workers, ray_address=args.ray_address, progress=not args.quiet
        )
        table = write_outputs(summaries, out, grid.baseline)
    print(
        f"\n{grid.base.benchmark}, {len(grid.seeds)} seed(s); fractions in % (mean ± half-width of the 95 % interval over seeds, Student's t)\n"
    )
    print(table)
    print(f"\nwrote {out / 'summary.csv'}, {out / 'table.csv'}, {out / 'table.md'} and {out / 'figures'}")
    return 0


def plot_command(args: argparse.Namespace) -> int:
    """``clgrow plot``: redraw a run's or a grid's figures and tables."""
    d = Path(args.dir)
    if not (d / "summary.json").is_file() and not (d / "cells").is_dir():
        return fail(f"{d} is neither a run directory (summary.json) nor a grid directory (cells/)")
    check_out(d / "figures")  # a read-only directory is named before anything is drawn
    from clgrow.experiments.grid import grid_baseline, load_cells
    from clgrow.experiments.plots import plot_run
    from clgrow.experiments.tables import write_outputs

    if (d / "summary.json").is_file():
        from clgrow.strategies.summary import RunSummary

        f = d / "summary.json"
        paths = plot_run(RunSummary.from_dict(json.loads(f.read_text()), where=str(f)), d / "figures")
    else:
        cells, left_out = load_cells(d)
        if left_out:
            print(
                f"clgrow: warning: left out {len(left_out)} cell(s) that are not finished cells of the grid in "
                f"{d / 'grid.json'}: {', '.join(left_out)}",
                file=sys.stderr,
            )
        if not cells:
            return fail(f"{d / 'cells'} holds no finished cell of its grid")
        write_outputs(cells, d, grid_baseline(d))
        paths = sorted((d / "figures").glob("*.png"))
    for p in paths:
        print(p)
    return 0


def list_command(verbose: bool, markdown: bool = False) -> int:
    """``clgrow list``: benchmarks, strategies, methods, presets; with ``verbose`` every argument
    and every run setting, by section; ``markdown``: the flag reference of docs/cli.md."""
    if markdown:
        print(flag_reference(), end="")
        return 0
    from clgrow.experiments.catalog import BENCHMARK_NAMES, EMBEDDED_BENCHMARKS
    from clgrow.experiments.config import RunConfig
    from clgrow.registry import REGISTRIES
    from clgrow.strategies.schedule import GROWTH_PRESETS

    print("benchmarks (embedded):", ", ".join(EMBEDDED_BENCHMARKS))
    print("benchmarks (on disk, --data-root):", ", ".join(b for b in BENCHMARK_NAMES if b not in EMBEDDED_BENCHMARKS))
    for kind, title in (
        ("strategy", "strategies"),
        ("extender", "extenders"),
        ("distributor", "distributors"),
        ("plasticity", "plasticity"),
    ):
        registry = REGISTRIES[kind]
        print(f"{title}:", ", ".join(["none", *registry] if kind == "plasticity" else registry))
        if verbose:
            for name in registry:
                declared = registry.params(name)
                doc = (declared.__doc__ or "").strip().splitlines()
                print(f"  {name}: {doc[0] if doc and not doc[0].startswith(declared.__name__ + '(') else ''}")
                for spec in declared.specs().values():
                    print(f"      {spec.name}: {spec.describe()}")
    print("growth presets:", ", ".join(GROWTH_PRESETS), "(or EXTENDER+DISTRIBUTOR; fixed-final in grids)")
    from clgrow.strategies.schedule import GrowthConfig

    print("run settings ([run] in a grid; flags: clgrow run --help; docs/cli.md):")
    groups: dict[str, list[Any]] = {}
    for s in RunConfig.settings().values():
        groups.setdefault(s.section, []).append(s)
    groups["growth ([run.grow])"] = list(GrowthConfig.settings().values())
    for section, entries in groups.items():
        print(f"  {section}: {', '.join(s.name for s in entries)}")
        for s in entries if verbose else ():
            print(f"      {s.name}: {s.help}; {s.takes()} (default: {s.default!r})")
    return 0


def flag_reference() -> str:
    """Every ``clgrow run`` setting and flag in Markdown, made from the declarations: the run's
    settings by section, the growth settings, and every method's arguments (docs/cli.md holds this
    text between its ``flag-reference`` markers; a test keeps it equal)."""
    from clgrow.experiments.config import RunConfig
    from clgrow.registry import REGISTRIES
    from clgrow.strategies.schedule import GrowthConfig
    from clgrow.strategies.settings import reference

    lines = [reference(RunConfig), reference(GrowthConfig, "`[run.grow]` key", "{} settings (the method is `growth`)")]
    for kind in ("extender", "distributor", "plasticity"):
        registry = REGISTRIES[kind]
        flag = "--plasticity" if kind == "plasticity" else "--growth"
        lines += ["", f"### {kind} arguments (used when {flag} names the method)", ""]
        lines += ["| flag | takes (default) |", "|---|---|"]
        for name in registry:
            for spec in registry.params(name).specs().values():
                lines.append(f"| `--{name}-{spec.name.replace('_', '-')}` | {spec.describe()} |")
    return "\n".join(lines).replace("\n\n\n", "\n\n").strip() + "\n"
