"""A grid's tables: one row per cell, rows aggregated over seeds, differences to a baseline paired by seed.

What ``summary.csv``, ``table.csv`` and ``table.md`` hold (:func:`write_outputs`); a row is a
strategy × growth × plasticity × prune, a column a metric with its 95 % interval over seeds.
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path
from typing import Any

from clgrow.experiments.config import FIXED
from clgrow.experiments.gridfile import parse_baseline
from clgrow.experiments.stats import LEVEL, interval, paired_difference
from clgrow.strategies.results import atomic_write_csv, atomic_write_text
from clgrow.strategies.summary import RunSummary

__all__ = [
    "aggregate",
    "markdown_table",
    "table_warnings",
    "paired_rows",
    "paired_table",
    "table_csv_rows",
    "write_outputs",
    "row_key",
    "row_label",
    "shown_axes",
    "axis_tags",
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


def axis_tags(get: Any) -> list[str]:
    """How the optional axes a row sets away from their default read in names and labels."""
    return [_AXIS_TAG[a].format(get(a, d)) for a, d in OPTIONAL_AXES.items() if get(a, d) != d]


def row_key(r: dict[str, Any]) -> tuple[str, ...]:
    """A row's identity: strategy, growth and every optional axis."""
    return (r["strategy"], r["growth"], *(str(r.get(a, d)) for a, d in OPTIONAL_AXES.items()))


def row_label(r: dict[str, Any]) -> str:
    """``strategy/growth`` with the optional axes that differ from their default."""
    return "/".join([r["strategy"], r["growth"], *axis_tags(r.get)])


def shown_axes(rows: list[dict[str, Any]]) -> list[str]:
    """The optional axes some row sets to a non-default value (the columns a table shows)."""
    return [a for a, d in OPTIONAL_AXES.items() if any(r.get(a, d) != d for r in rows)]


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
    """For every row but the baseline, its difference to its baseline row
    (:class:`~clgrow.experiments.gridfile.Baseline`), paired by seed: ``key`` (an
    :class:`~clgrow.experiments.stats.Interval`) per column of :data:`PAIRED_COLUMNS`."""
    wanted = parse_baseline(baseline)
    out = []
    for r in rows:
        b = next((c for c in rows if wanted.matches(c, r)), None)
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
