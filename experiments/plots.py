"""Figures for one run and for a comparison grid (matplotlib, Agg backend, PNG files).

Readable at page width: small multiples of at most three columns, at most 1,800 pixels wide,
every axis named with its unit (percent, as the tables), legends beside the data, bands explained
on the figure, matrices with a colour bar, and one colour and line style per method in every
figure (:func:`method_style`). ``run_figures`` and ``grid_figures`` build the figures (the tests
read their structure); ``plot_run`` and ``plot_grid`` write them.
"""

from __future__ import annotations

import os
import warnings
import zlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from clgrow.strategies.summary import RunSummary

__all__ = ["plot_run", "plot_grid", "run_figures", "grid_figures", "method_style", "DPI", "MAX_WIDTH_PX"]

#: Resolution of the written figures, and the widest a figure may be at it.
DPI = 150
MAX_WIDTH_PX = 1800
_COLUMN_IN = 3.8  # one panel's width, inches: three columns make 11.4 in = 1,710 px
X_LABEL = "after training experience"

#: Methods' colours and line styles, the same in every figure: the common rows fixed, any other
#: method drawn from the palette by a hash of its name (stable across runs and grids).
_FIXED_STYLES: dict[str, tuple[str, str]] = {
    "none": ("#7f7f7f", "-"),
    "fixed-final": ("#000000", "--"),
    "fixed-compute": ("#000000", ":"),
    "random-uniform": ("#1f77b4", "-"),
    "random-svod": ("#1f77b4", "--"),
    "swe-svod": ("#d62728", "-"),
    "swe-uniform": ("#ff7f0e", "-"),
    "swe-proportional": ("#9467bd", "-"),
    "net2net-svod": ("#2ca02c", "-"),
    "gradmax-svod": ("#8c564b", "-"),
}
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_DASHES = ("-", "--", "-.", ":")


def method_style(method: str) -> dict[str, str]:
    """Colour and line style of ``method`` (a growth name, with its plasticity method if any)."""
    if method in _FIXED_STYLES:
        colour, dash = _FIXED_STYLES[method]
    else:
        h = zlib.crc32(method.encode())
        colour, dash = _PALETTE[h % len(_PALETTE)], _DASHES[(h // len(_PALETTE)) % len(_DASHES)]
    return {"color": colour, "linestyle": dash}


def _nan(values: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def _nanmean(arr: np.ndarray, axis: int = 0) -> np.ndarray:
    """Mean ignoring missing values; all-missing positions stay nan without a warning
    (series start with missing values: no new units before the first growth)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(arr, axis=axis)


def _grid(n: int, cols: int = 3, height: float = 2.9) -> tuple[Any, list[Any]]:
    """``n`` panels in at most three columns; the figure's axes, row-major (extra ones hidden)."""
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(_COLUMN_IN * cols, height * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.axis("off")
    return fig, flat[:n]


def _percent_axis(ax: Any, label: str, fixed: bool = True) -> None:
    """A y axis in percent: 0–100 for accuracies and fractions, fitted to the data otherwise
    (disruption is near 0 and may be negative)."""
    ax.set_ylabel(f"{label} (%)", fontsize=8)
    if fixed:
        ax.set_ylim(-2, 102)
    else:
        lo, hi = ax.get_ylim()
        if hi - lo < 2:  # a flat series: a band of ±1 point around it, not a hair-thin axis
            mid = (hi + lo) / 2
            ax.set_ylim(mid - 1, mid + 1)


def _heatmap(ax: Any, mat: Sequence[Sequence[Any]], title: str, fig: Any, colorbar: bool = True) -> None:
    """An accuracy matrix in percent, each cell written, with its axes named and a colour bar."""
    arr = np.array([_nan(r) for r in mat]) * 100
    image = ax.imshow(arr, vmin=0, vmax=100, cmap="viridis")
    for i in range(arr.shape[0]):
        for j in range(arr.shape[1]):
            if not np.isnan(arr[i, j]):
                ax.text(j, i, f"{arr[i, j]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if arr[i, j] < 50 else "black")  # fmt: skip
    ax.set_xlabel("evaluated on experience", fontsize=8)
    ax.set_ylabel(X_LABEL, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.set_xticks(range(arr.shape[1]))
    ax.set_yticks(range(arr.shape[0]))
    if colorbar:
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04).set_label("accuracy (%)", fontsize=8)


def _legend_below(fig: Any, handles: list[Any], labels: list[str], title: str | None = None, note: str = "") -> None:
    """One legend for the figure, under the panels (it covers no data), with a note if any."""
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8, frameon=False,
               title=title, title_fontsize=8, bbox_to_anchor=(0.5, 0.0))  # fmt: skip
    if note:
        fig.text(0.99, 0.995, note, ha="right", va="top", fontsize=7, style="italic")
    rows = -(-len(labels) // 5)
    fig.tight_layout(rect=(0, 0.05 + 0.035 * rows, 1, 0.97 if note else 1))


def _stacked_sizes(ax: Any, sizes: Sequence[Sequence[float]] | np.ndarray) -> list[Any]:
    arr = _sizes_array(sizes)
    bottom = np.zeros(arr.shape[0])
    bars = []
    for layer in range(arr.shape[1]):
        bars.append(ax.bar(np.arange(arr.shape[0]), arr[:, layer], bottom=bottom, label=f"layer {layer}"))
        bottom += np.nan_to_num(arr[:, layer])
    ax.set_xticks(np.arange(arr.shape[0]))
    ax.set_xlabel(X_LABEL, fontsize=8)
    ax.set_ylabel("hidden units (count)", fontsize=8)
    return bars


def _sizes_array(sizes: Sequence[Sequence[float]] | np.ndarray, depth: int | None = None) -> np.ndarray:
    """Widths per experience ``(experiences, layers)``; rows without a measurement (joint training
    evaluates once; PNN has no growth sites) are NaN."""
    depth = max((len(s) for s in sizes), default=0) if depth is None else depth
    return np.array([list(s) if len(s) == depth else [np.nan] * depth for s in sizes], dtype=float).reshape(
        len(sizes), depth
    )


# ---------------------------------------------------------------------------- one run
def run_figures(summary: RunSummary) -> dict[str, Any]:
    """A run's figures by file name: accuracy matrix, metrics per experience, widths per
    experience, dormancy by cohort and by last reset."""
    title = f"{summary.benchmark} · {summary.strategy} · {summary.method} · seed {summary.seed}"
    n = summary.n_experiences
    x = np.arange(n)
    figs: dict[str, Any] = {}

    fig, ax = plt.subplots(figsize=(5, 4.2))
    _heatmap(ax, summary.accuracy_matrix, title, fig)
    fig.tight_layout()
    figs["accuracy_matrix.png"] = fig

    panels = [
        ("accuracy", [("stream accuracy", summary.stream_accuracy, "o-"),
                      ("on the experience just learned", RunSummary.diagonal(summary.accuracy_matrix), "^-")], True),
        ("forgetting", [("stream forgetting", summary.forgetting, "s-")], True),
        ("inactive units", [("dead", summary.dead_fraction, "o-"), ("dormant", summary.dormant_fraction, "s-"),
                            ("new dead", summary.new_dead_fraction, "o--"),
                            ("new dormant", summary.new_dormant_fraction, "s--")], True),
        ("disruption of seen experiences", [("growth", summary.growth_disruption, "d-"),
                                            ("prune", summary.prune_disruption, "x-")], False),
    ]  # fmt: skip
    panels = [p for p in panels if any(any(v is not None for v in s) for _, s, _ in p[1])]
    fig, axes = _grid(len(panels), cols=2)
    for ax, (label, lines, fixed) in zip(axes, panels):
        for name, values, style in lines:
            if any(v is not None for v in values):
                ax.plot(x, _nan(values) * 100, style, markersize=4, label=name)
        ax.set_xticks(x)
        ax.set_xlabel(X_LABEL, fontsize=8)
        _percent_axis(ax, label, fixed)
        if not fixed:
            ax.axhline(0, color="#999999", linewidth=0.6)
        # under the panel, beside its axis label: it covers no data
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)
    fig.set_size_inches(_COLUMN_IN * 2, 3.6 * -(-len(panels) // 2))
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    figs["metrics_per_experience.png"] = fig

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    _stacked_sizes(ax, summary.hidden_sizes)
    ax.set_title(title, fontsize=9)
    if ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    figs["hidden_sizes.png"] = fig

    groups = [
        (summary.cohort_dormant, "cohort_", "dormant units by cohort", "added at", "cohort_dormancy.png"),
        (summary.reset_dormant, "reset_", f"dormant units by last reset ({summary.plasticity})", "last reset at",
         "reset_dormancy.png"),
    ]  # fmt: skip
    for by_group, prefix, what, legend, name in groups:
        if not by_group:
            continue
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for group, values in sorted(by_group.items()):
            ax.plot(x, _nan(values) * 100, "o-", markersize=4, label=group.replace(prefix, ""))
        ax.set_xticks(x)
        ax.set_xlabel(X_LABEL, fontsize=8)
        _percent_axis(ax, "dormant units of the group")
        ax.set_title(f"{what} · {title}", fontsize=8)
        ax.legend(fontsize=7, title=legend, title_fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  frameon=False)  # fmt: skip
        fig.tight_layout()
        figs[name] = fig
    return figs


def plot_run(summary: RunSummary, out_dir: str | Path) -> list[Path]:
    """Write :func:`run_figures` as PNG files into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [_save(fig, out / name) for name, fig in run_figures(summary).items()]


def _save(fig: Any, path: Path) -> Path:
    """Write ``fig`` as PNG atomically: a temporary file of this process, then a rename, so a full
    disk or a kill never leaves a truncated figure under the real name."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    try:
        fig.savefig(tmp, dpi=DPI)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return path


# ---------------------------------------------------------------------------------- grid
#: The per-experience panels of a grid: summary field, axis label, whether 0–100 % fits it.
GRID_PANELS = (
    ("stream_accuracy", "stream accuracy", True),
    ("learning", "accuracy just after learning", True),
    ("forgetting", "forgetting", True),
    ("growth_disruption", "growth disruption", False),
    ("dormant_fraction", "dormant units", True),
    ("new_dormant_fraction", "dormant new units", True),
    ("dead_fraction", "dead units", True),
    ("new_dead_fraction", "dead new units", True),
)


def grid_figures(summaries: list[RunSummary]) -> dict[str, Any]:
    """A grid's figures by file name: per strategy, its metrics per experience (means over seeds
    with their 95 % interval), accuracy matrices, widths and cohort dormancy."""
    groups: dict[tuple[str, str], list[RunSummary]] = defaultdict(list)
    for s in summaries:
        groups[(s.strategy, s.method)].append(s)
    strategies = sorted({k[0] for k in groups})
    methods = list(dict.fromkeys(s.method for s in summaries))  # growth, with the plasticity method if any
    seeds = max((len(v) for v in groups.values()), default=0)
    band_note = f"lines: mean over {seeds} seeds; bands: its 95 % interval" if seeds > 1 else ""
    figs: dict[str, Any] = {}

    def series(s: RunSummary, key: str) -> Sequence[Any]:
        return RunSummary.diagonal(s.accuracy_matrix) if key == "learning" else getattr(s, key)

    def values(items: list[RunSummary], key: str) -> np.ndarray:
        return np.array([_nan(series(s, key)) for s in items], dtype=float) * 100

    def band(arr: np.ndarray) -> np.ndarray:
        """Half-width of the 95 % interval over seeds at each experience (NaN where < 2 seeds)."""
        from clgrow.experiments.stats import interval

        return np.array([interval([v for v in col if np.isfinite(v)]).half for col in arr.T])

    for strat in strategies:
        panels = [p for p in GRID_PANELS if any(any(v is not None for v in series(s, p[0])) for s in summaries)]
        fig, axes = _grid(len(panels))
        for ax, (key, label, fixed) in zip(axes, panels):
            for method in methods:
                items = groups.get((strat, method), [])
                if not items:
                    continue
                arr = values(items, key)
                y = _nanmean(arr, axis=0)
                x = np.arange(len(y))
                ax.plot(x, y, marker="o", markersize=3, label=method, **method_style(method))
                half = band(arr)
                if np.isfinite(half).any():
                    ax.fill_between(x, y - half, y + half, color=method_style(method)["color"], alpha=0.10,
                                    linewidth=0)  # fmt: skip
                ax.set_xticks(x)
            ax.set_xlabel(X_LABEL, fontsize=8)
            _percent_axis(ax, label, fixed)
            if not fixed:
                ax.axhline(0, color="#999999", linewidth=0.6)
        fig.suptitle(strat, fontsize=10, x=0.01, ha="left")
        handles, labels = _handles(axes)
        _legend_below(fig, handles, labels, "growth", band_note)
        figs["per_experience.png" if strat == strategies[0] else f"per_experience_{strat}.png"] = fig

    cells = [(strat, m) for strat in strategies for m in methods if groups.get((strat, m))]
    fig, axes = _grid(len(cells), height=3.3)
    for ax, (strat, method) in zip(axes, cells):
        mats = np.array([[_nan(row) for row in s.accuracy_matrix] for s in groups[(strat, method)]])
        _heatmap(ax, _nanmean(mats, axis=0).tolist(), f"{strat} · {method}", fig)
    fig.tight_layout()
    figs["accuracy_matrices.png"] = fig

    fig, axes = _grid(len(cells), height=2.8)
    for ax, (strat, method) in zip(axes, cells):
        items = groups[(strat, method)]
        depth = max((len(row) for s in items for row in s.hidden_sizes), default=0)
        _stacked_sizes(ax, _nanmean(np.array([_sizes_array(s.hidden_sizes, depth) for s in items]), axis=0))
        ax.set_title(f"{strat} · {method}", fontsize=8)
    handles, labels = _handles(axes)
    _legend_below(fig, handles, labels, "hidden layer (stacked)")
    figs["hidden_sizes.png"] = fig

    grown = [(k, v) for k, v in groups.items() if any(s.cohort_dormant and len(s.cohort_dormant) > 1 for s in v)]
    if grown:
        fig, axes = _grid(len(grown))
        for ax, ((strat, method), items) in zip(axes, grown):
            cohorts = sorted({c for s in items for c in s.cohort_dormant}, key=lambda c: (c != "cohort_initial", c))
            for i, cohort in enumerate(cohorts):
                ys = [_nan(s.cohort_dormant[cohort]) for s in items if cohort in s.cohort_dormant]
                y = _nanmean(np.array(ys), axis=0) * 100
                ax.plot(np.arange(len(y)), y, "o-", markersize=3, color=plt.get_cmap("viridis")(i / max(1, len(cohorts) - 1)),
                        label=cohort.replace("cohort_", ""))  # fmt: skip
                ax.set_xticks(np.arange(len(y)))
            ax.set_title(f"{strat} · {method}", fontsize=8)
            ax.set_xlabel(X_LABEL, fontsize=8)
            _percent_axis(ax, "dormant units of the cohort")
        handles, labels = _handles(axes)
        _legend_below(fig, handles, labels, "cohort: units added at", f"lines: mean over {seeds} seeds")
        figs["cohort_dormancy.png"] = fig
    return figs


def _handles(axes: list[Any]) -> tuple[list[Any], list[str]]:
    """Every labelled artist of the panels, once per label (in the order first drawn)."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, h)
    return list(seen.values()), list(seen)


def plot_grid(summaries: list[RunSummary], out_dir: str | Path) -> list[Path]:
    """Write :func:`grid_figures` as PNG files into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [_save(fig, out / name) for name, fig in grid_figures(summaries).items()]
