"""Every figure kind's structure: size at page width, axes named with their unit, legends that
cover no data, bands explained, colour bars on matrices, one style per method everywhere."""

from __future__ import annotations

import copy
import json

import matplotlib.pyplot as plt
import pytest

from clgrow.experiments.cli import main
from clgrow.experiments.plots import DPI, MAX_WIDTH_PX, grid_figures, method_style, run_figures
from clgrow.strategies.summary import RunSummary
from tests.experiments.conftest import TINY


@pytest.fixture(scope="module")
def summaries(tmp_path_factory):
    """A tiny run's summary, and a grid of them (2 strategies x 3 methods x 2 seeds) made from it."""
    out = tmp_path_factory.mktemp("plots") / "run"
    assert main(["run", *TINY, "--growth", "swe-svod", "--out", str(out)]) == 0
    base = json.loads((out / "summary.json").read_text())
    grid = []
    for strategy in ("naive", "replay"):
        for growth in ("none", "fixed-final", "swe-svod"):
            for seed in (0, 1):
                d = copy.deepcopy(base)
                d.update(strategy=strategy, growth=growth, seed=seed)
                d["stream_accuracy"] = [a * (1 - 0.05 * seed) for a in d["stream_accuracy"]]
                grid.append(RunSummary.from_dict(d))
    return RunSummary.from_dict(base), grid


def _check_page_width(name, fig):
    width = fig.get_size_inches()[0] * DPI
    assert width <= MAX_WIDTH_PX, f"{name} is {width:.0f} px wide"
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.axison and ax.get_label() != "<colorbar>"]
    columns = {round(ax.get_position().x0, 2) for ax in panels}
    assert len(columns) <= 3, f"{name} has {len(columns)} columns"
    return panels


def _check_legends_beside_data(name, fig, panels):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [*fig.legends, *(ax.get_legend() for ax in panels if ax.get_legend() is not None)]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in panels:
            assert not box.overlaps(ax.get_window_extent(renderer)) or box.width * box.height == 0, (
                f"{name}: a legend covers a panel"
            )


def test_a_runs_figures_read_at_page_width(summaries):
    run, _ = summaries
    figs = run_figures(run)
    assert set(figs) >= {"accuracy_matrix.png", "metrics_per_experience.png", "hidden_sizes.png"}
    for name, fig in figs.items():
        panels = _check_page_width(name, fig)
        for ax in panels:
            assert ax.get_xlabel() and ax.get_ylabel(), f"{name}: an axis without a name"
            assert "(%)" in ax.get_ylabel() or "(count)" in ax.get_ylabel() or name == "accuracy_matrix.png"
        _check_legends_beside_data(name, fig, panels)
        plt.close(fig)
    matrix = run_figures(run)["accuracy_matrix.png"]
    assert any(ax.get_label() == "<colorbar>" and "accuracy (%)" in ax.get_ylabel() for ax in matrix.axes)
    plt.close("all")


def test_a_grids_figures_read_at_page_width(summaries):
    _, grid = summaries
    figs = grid_figures(grid)
    assert set(figs) >= {"per_experience.png", "per_experience_replay.png", "accuracy_matrices.png", "hidden_sizes.png"}
    for name, fig in figs.items():
        panels = _check_page_width(name, fig)
        for ax in panels:
            assert ax.get_xlabel() and ax.get_ylabel(), f"{name}: an axis without a name"
        _check_legends_beside_data(name, fig, panels)
    per_exp = figs["per_experience.png"]
    assert any("95 % interval" in t.get_text() and "2 seeds" in t.get_text() for t in per_exp.texts)
    assert [t.get_text() for t in per_exp.legends[0].get_texts()] == ["none", "fixed-final", "swe-svod"]
    for ax in per_exp.axes:
        if ax.get_ylabel().startswith("growth disruption"):
            low, high = ax.get_ylim()
            assert high - low <= 10, "disruption near 0 is drawn on a scale that fits it"
        elif ax.axison:
            assert ax.get_ylim() == (-2, 102) and "(%)" in ax.get_ylabel()
    colorbars = [ax for ax in figs["accuracy_matrices.png"].axes if ax.get_label() == "<colorbar>"]
    assert len(colorbars) == 6
    plt.close("all")


def test_one_colour_and_line_style_per_method_in_every_figure(summaries):
    _, grid = summaries
    figs = grid_figures(grid)
    drawn = {}
    for name in ("per_experience.png", "per_experience_replay.png"):
        for ax in figs[name].axes:
            for line in ax.get_lines():
                if line.get_label().startswith("_"):
                    continue
                style = (line.get_color(), line.get_linestyle())
                assert drawn.setdefault(line.get_label(), style) == style
    assert {label: style for label, style in drawn.items()} == {
        m: (method_style(m)["color"], {"-": "-", "--": "--", ":": ":", "-.": "-."}[method_style(m)["linestyle"]])
        for m in drawn
    }
    assert len(set(drawn.values())) == len(drawn)  # two methods never share a style
    assert method_style("my-own+svod") == method_style("my-own+svod")  # any other name: stable
    plt.close("all")
