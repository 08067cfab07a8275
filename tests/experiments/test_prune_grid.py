"""Pruning from the command line and in grids: flags, the prune axis, its table and its errors."""

from __future__ import annotations

import json

import pytest

from clgrow.errors import ConfigError
from clgrow.experiments.cli import main
from clgrow.experiments.config import PRUNE_CHOICES, PRUNE_SELECT
from clgrow.experiments.grid import cell_name
from clgrow.experiments.gridfile import load_grid
from clgrow.experiments.tables import row_key, row_label, shown_axes
from tests.experiments.conftest import TINY


def test_the_config_spells_the_core_names():
    from clgrow.methods.prune import METHODS
    from clgrow.strategies.prune_plugin import PRUNE_SELECTORS

    assert PRUNE_CHOICES == ("none", *METHODS) and PRUNE_SELECT == PRUNE_SELECTORS


def test_the_shipped_prune_grid_crosses_the_prune_axis_with_every_row():
    grid = load_grid("experiments/configs/prune.toml")
    cells = grid.cells()
    assert len(cells) == 2 * 3 * 3 * 3
    assert {c.prune for c in cells} == {"none", "drop", "swe"}
    assert all(c.grow.max_params == 100000 and c.prune_select == "dormant" for c in cells)
    names = [cell_name(c) for c in cells]
    assert len(set(names)) == len(names)
    assert "replay__swe-svod__prune-swe__seed0" in names and "replay__swe-svod__seed0" in names


def test_row_labels_keys_and_columns_follow_the_optional_axes():
    rows = [
        {"strategy": "replay", "growth": "swe-svod", "plasticity": "none", "prune": "none"},
        {"strategy": "replay", "growth": "swe-svod", "plasticity": "none", "prune": "swe"},
    ]
    assert [row_label(r) for r in rows] == ["replay/swe-svod", "replay/swe-svod/prune-swe"]
    assert row_key(rows[0]) != row_key(rows[1])
    assert shown_axes(rows) == ["prune"] and shown_axes(rows[:1]) == []


def test_a_bad_prune_axis_is_refused_naming_it(tmp_path):
    f = tmp_path / "g.toml"
    f.write_text(
        '[grid]\nbenchmark = "split-digits"\nstrategies = ["naive"]\ngrowth = ["none"]\nseeds = [0]\n'
        'prune = ["none", "shrink"]\n'
    )
    with pytest.raises(ConfigError, match="grid.prune: unknown prune method 'shrink'"):
        load_grid(f)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--prune", "dead"], "invalid choice: 'dead'"),
        (["--prune", "drop", "--prune-select", "utility"], "invalid choice: 'utility'"),
        (["--growth", "random-uniform", "--max-params", "10"], "max_params: 10 is below the model's"),
    ],
)
def test_bad_prune_flags_exit_2(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(["run", *TINY, *argv, "--out", str(tmp_path / "o")]))
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_a_run_prunes_by_swe_under_a_budget_and_records_it(tmp_path):
    out = tmp_path / "o"
    argv = ["run", *TINY, "--growth", "random-uniform", "--prune", "swe", "--prune-select", "dormant"]
    assert main([*argv, "--prune-tau", "0.5", "--max-params", "5000", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["prune"] == "swe" and sum(s["units_pruned"]) > 0
    assert s["parameters"] <= 5000
    assert len(s["prune_disruption"]) == len(s["units_pruned"]) and s["prune_disruption"][0] is None
