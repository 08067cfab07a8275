"""Figures for one run and for a comparison grid (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

import os
import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from clgrow.strategies.summary import RunSummary

__all__ = ["plot_run", "plot_grid"]


def _nan(values: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def _nanmean(arr: np.ndarray, axis: int = 0) -> np.ndarray:
    """Mean ignoring missing values; all-missing positions stay nan without a warning
    (series start with missing values: no new units before the first growth)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(arr, axis=axis)


def _heatmap(ax: Any, mat: Sequence[Sequence[Any]], title: str) -> None:
    arr = np.array([_nan(r) for r in mat])
    ax.imshow(arr, vmin=0, vmax=1, cmap="viridis")
    n = arr.shape[0]
    for i in range(n):
        for j in range(arr.shape[1]):
            if not np.isnan(arr[i, j]):
                ax.text(
                    j,
                    i,
                    f"{arr[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if arr[i, j] < 0.5 else "black",
                )
    ax.set_xlabel("evaluated on experience")
    ax.set_ylabel("after training experience")
    ax.set_title(title, fontsize=9)
    ax.set_xticks(range(arr.shape[1]))
    ax.set_yticks(range(n))


def plot_run(summary: RunSummary, out_dir: str | Path) -> list[Path]:
    """Accuracy matrix, metrics per experience, widths per experience, dormancy by cohort and by last reset."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    title = f"{summary.benchmark} · {summary.strategy} · {summary.method} · seed {summary.seed}"
    paths = []
    n = summary.n_experiences
    x = np.arange(n)

    fig, ax = plt.subplots(figsize=(4.5, 4))
    _heatmap(ax, summary.accuracy_matrix, title)
    paths.append(_save(fig, out / "accuracy_matrix.png"))

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].plot(x, _nan(summary.stream_accuracy), "o-", label="stream accuracy")
    axes[0].plot(
        x, _nan(RunSummary.diagonal(summary.accuracy_matrix)), "^-", label="accuracy on the experience just learned"
    )
    axes[0].plot(x, _nan(summary.forgetting), "s-", label="stream forgetting")
    if any(v is not None for v in summary.growth_disruption):
        axes[0].plot(x, _nan(summary.growth_disruption), "d:", label="growth disruption (accuracy drop on seen exps)")
    if any(v is not None for v in summary.prune_disruption):
        axes[0].plot(x, _nan(summary.prune_disruption), "x:", label="prune disruption (accuracy drop on seen exps)")
    axes[0].set_ylim(0, 1)
    axes[0].set_xlabel("after training experience")
    for a in axes:
        a.set_xticks(x)
    axes[0].legend(fontsize=8)
    for key, style in [
        ("dead_fraction", "o-"),
        ("dormant_fraction", "s-"),
        ("new_dead_fraction", "o--"),
        ("new_dormant_fraction", "s--"),
    ]:
        axes[1].plot(x, _nan(getattr(summary, key)), style, label=key.replace("_fraction", "").replace("_", " "))
    axes[1].set_ylim(0, 1)
    axes[1].set_xlabel("after training experience")
    axes[1].set_title("inactive hidden units (fraction)", fontsize=9)
    axes[1].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    paths.append(_save(fig, out / "metrics_per_experience.png"))

    fig, ax = plt.subplots(figsize=(5, 3.6))
    _stacked_sizes(ax, summary.hidden_sizes)
    ax.set_title(title, fontsize=9)
    paths.append(_save(fig, out / "hidden_sizes.png"))

    groups = [
        (summary.cohort_dormant, "cohort_", "dormant units by cohort", "added at", "cohort_dormancy.png"),
        (
            summary.reset_dormant,
            "reset_",
            f"dormant units by last reset ({summary.plasticity})",
            "last reset at",
            "reset_dormancy.png",
        ),
    ]
    for by_group, prefix, what, legend, name in groups:
        if not by_group:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.6))
        for group, series in sorted(by_group.items()):
            ax.plot(x, _nan(series), "o-", label=group.replace(prefix, ""))
        ax.set_ylim(-0.02, 1.02)
        ax.set_xticks(x)
        ax.set_xlabel("after training experience")
        ax.set_ylabel("dormant fraction")
        ax.set_title(f"{what} · {title}", fontsize=8)
        ax.legend(fontsize=7, title=legend, title_fontsize=7)
        paths.append(_save(fig, out / name))
    return paths


def _sizes_array(sizes: Sequence[Sequence[float]] | np.ndarray, depth: int | None = None) -> np.ndarray:
    """Widths per experience ``(experiences, layers)``; rows without a measurement (joint training
    evaluates once; PNN has no GrowableMLP) are NaN."""
    depth = max((len(s) for s in sizes), default=0) if depth is None else depth
    return np.array([list(s) if len(s) == depth else [np.nan] * depth for s in sizes], dtype=float).reshape(
        len(sizes), depth
    )


def _stacked_sizes(ax: Any, sizes: Sequence[Sequence[float]] | np.ndarray) -> None:
    arr = _sizes_array(sizes)
    bottom = np.zeros(arr.shape[0])
    for layer in range(arr.shape[1]):
        ax.bar(np.arange(arr.shape[0]), arr[:, layer], bottom=bottom, label=f"layer {layer}")
        bottom += arr[:, layer]
    ax.set_xticks(np.arange(arr.shape[0]))
    ax.set_xlabel("after training experience")
    ax.set_ylabel("hidden units")
    if arr.shape[1]:
        ax.legend(fontsize=7)


def _save(fig: Any, path: Path) -> Path:
    """Write ``fig`` as PNG atomically: a temporary file of this process, then a rename, so a full
    disk or a kill never leaves a truncated figure under the real name."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    try:
        fig.tight_layout()
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return path


def plot_grid(summaries: list[RunSummary], out_dir: str | Path) -> list[Path]:
    """Comparison figures over a grid: accuracy matrices, forgetting and inactivity per
    experience, widths per experience, cohort dormancy (means over seeds)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[str, str], list[RunSummary]] = defaultdict(list)
    for s in summaries:
        groups[(s.strategy, s.method)].append(s)
    strategies = sorted({k[0] for k in groups})
    growths = list(dict.fromkeys(s.method for s in summaries))  # growth, with the plasticity method if any
    paths = []

    def series(s: RunSummary, key: str) -> Sequence[Any]:
        return RunSummary.diagonal(s.accuracy_matrix) if key == "learning" else getattr(s, key)

    def mean_series(items: list[RunSummary], key: str) -> np.ndarray:
        return _nanmean(np.array([_nan(series(s, key)) for s in items]), axis=0) if items else np.array([])

    def band(items: list[RunSummary], key: str) -> np.ndarray:
        """Half-width of the 95 % interval over seeds at each experience (NaN where < 2 seeds)."""
        from clgrow.experiments.stats import interval

        arr = np.array([_nan(series(s, key)) for s in items], dtype=float)
        return np.array([interval([v for v in col if np.isfinite(v)]).half for col in arr.T])

    fig, axes = plt.subplots(
        len(strategies), len(growths), figsize=(2.6 * len(growths), 2.6 * len(strategies)), squeeze=False
    )
    for r, strat in enumerate(strategies):
        for c, growth in enumerate(growths):
            items = groups.get((strat, growth), [])
            ax = axes[r][c]
            if not items:
                ax.axis("off")
                continue
            mats = np.array([[_nan(row) for row in s.accuracy_matrix] for s in items])
            _heatmap(ax, _nanmean(mats, axis=0).tolist(), f"{strat} · {growth}")
            ax.set_xlabel("")
            ax.set_ylabel("")
    paths.append(_save(fig, out / "accuracy_matrices.png"))

    panels = [
        ("stream_accuracy", "stream accuracy"),
        ("learning", "accuracy on the experience just learned"),
        ("forgetting", "stream forgetting"),
        ("growth_disruption", "growth disruption (accuracy drop)"),
        ("dormant_fraction", "dormant fraction (all units)"),
        ("new_dormant_fraction", "dormant fraction (new units)"),
        ("dead_fraction", "dead fraction (all units)"),
        ("new_dead_fraction", "dead fraction (new units)"),
    ]
    fig, axes = plt.subplots(
        len(strategies), len(panels), figsize=(3.2 * len(panels), 2.8 * len(strategies)), squeeze=False
    )
    for r, strat in enumerate(strategies):
        for c, (key, label) in enumerate(panels):
            ax = axes[r][c]
            for growth in growths:
                items = groups.get((strat, growth), [])
                if items:
                    y = mean_series(items, key)
                    (line,) = ax.plot(np.arange(len(y)), y, "o-", label=growth, markersize=3)
                    half = band(items, key)
                    if np.isfinite(half).any():  # the 95 % interval over seeds, as a band
                        ax.fill_between(
                            np.arange(len(y)), y - half, y + half, color=line.get_color(), alpha=0.15, linewidth=0
                        )
                    ax.set_xticks(np.arange(len(y)))
            ax.set_title(f"{strat}: {label}", fontsize=8)
            ax.set_ylim(-0.02, 1.02)
            if r == len(strategies) - 1:
                ax.set_xlabel("after training experience", fontsize=8)
    fullest = max(range(len(strategies)), key=lambda r: len(axes[r][0].get_lines()))  # a reference row has one line
    axes[fullest][0].legend(fontsize=7)
    paths.append(_save(fig, out / "per_experience.png"))

    fig, axes = plt.subplots(
        len(strategies), len(growths), figsize=(2.6 * len(growths), 2.4 * len(strategies)), squeeze=False, sharey=True
    )
    for r, strat in enumerate(strategies):
        for c, growth in enumerate(growths):
            items = groups.get((strat, growth), [])
            ax = axes[r][c]
            if items:
                depth = max((len(row) for s in items for row in s.hidden_sizes), default=0)
                _stacked_sizes(ax, _nanmean(np.array([_sizes_array(s.hidden_sizes, depth) for s in items]), axis=0))
            ax.set_title(f"{strat} · {growth}", fontsize=8)
            ax.set_xlabel("")
    paths.append(_save(fig, out / "hidden_sizes.png"))

    grown = [(k, v) for k, v in groups.items() if any(s.cohort_dormant and len(s.cohort_dormant) > 1 for s in v)]
    if grown:
        fig, axes = plt.subplots(1, len(grown), figsize=(3.4 * len(grown), 3), squeeze=False)
        for ax, ((strat, growth), items) in zip(axes[0], grown):
            cohorts = sorted({c for s in items for c in s.cohort_dormant})
            for cohort in cohorts:
                ys = [_nan(s.cohort_dormant[cohort]) for s in items if cohort in s.cohort_dormant]
                y = _nanmean(np.array(ys), axis=0)
                ax.plot(np.arange(len(y)), y, "o-", markersize=3, label=cohort.replace("cohort_", ""))
            ax.set_title(f"{strat} · {growth}", fontsize=8)
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("after training experience", fontsize=8)
        axes[0][0].set_ylabel("dormant fraction of cohort")
        axes[0][0].legend(fontsize=7, title="added at", title_fontsize=7)
        paths.append(_save(fig, out / "cohort_dormancy.png"))
    return paths
