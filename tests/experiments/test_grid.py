"""Comparison grids: table, CSV, figures, restart without re-running, Ray = local."""

from __future__ import annotations

import csv
import json
import textwrap

import pytest

from clgrow.errors import ConfigError
from clgrow.experiments.cli import main
from clgrow.experiments.gridfile import load_grid

GRID = textwrap.dedent("""
    [grid]
    benchmark = "split-digits"
    strategies = ["naive"]
    growth = ["none", "fixed-final", "random-uniform"]
    seeds = [0, 1]
    match_growth = "random-uniform"

    [run]
    hidden_sizes = [8, 8]
    train_epochs = 1
    train_mb_size = 64

    [run.grow]
    neurons_per_experience = 4
""")


@pytest.fixture()
def grid_file(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(GRID)
    return path


def _rows(out):
    with open(out / "summary.csv") as f:
        return list(csv.DictReader(f))


def test_compare_table_csv_figures_and_restart(grid_file, tmp_path, capsys):
    out = tmp_path / "g"
    assert main(["compare", str(grid_file), "--out", str(out), "--workers", "2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| naive | fixed-final |" in printed and "± " in printed
    rows = _rows(out)
    assert len(rows) == 6 and {r["growth"] for r in rows} == {"none", "fixed-final", "random-uniform"}
    by = {(r["growth"], r["seed"]): r for r in rows}
    assert by[("fixed-final", "0")]["hidden_sizes"] == by[("random-uniform", "0")]["hidden_sizes"] == "16x16"
    assert {p.name for p in (out / "figures").glob("*.png")} >= {
        "accuracy_matrices.png",
        "per_experience.png",
        "hidden_sizes.png",
        "cohort_dormancy.png",
    }
    # a restarted grid does not re-run finished cells
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/summary.json")}
    assert len(stamps) == 6
    assert main(["compare", str(grid_file), "--out", str(out), "--quiet"]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("cells/*/summary.json")} == stamps
    assert main(["plot", str(out)]) == 0


@pytest.mark.slow  # starting Ray takes half a minute; `make test-all` runs it
def test_ray_backend_gives_the_local_results(grid_file, tmp_path):
    pytest.importorskip("ray")
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert main(["compare", str(grid_file), "--out", str(local), "--workers", "1", "--quiet"]) == 0
    assert main(["compare", str(grid_file), "--out", str(remote), "--backend", "ray", "--workers", "2", "--quiet"]) == 0
    strip = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k and "over" not in k} for r in rows]  # noqa: E731
    assert strip(_rows(local)) == strip(_rows(remote))
    a = json.loads(next(local.glob("cells/naive__random-uniform__seed1/summary.json")).read_text())
    b = json.loads(next(remote.glob("cells/naive__random-uniform__seed1/summary.json")).read_text())
    assert a["accuracy_matrix"] == b["accuracy_matrix"]


@pytest.mark.parametrize(
    "text,message",
    [
        ("[grid]\nstrategies=['naive']\ngrowth=['none']\n", "grid.seeds: missing"),
        ("[grid]\nstrategies=['nope']\ngrowth=['none']\nseeds=[0]\n", "grid.strategies: unknown strategy 'nope'"),
        ("[grid]\nstrategies=['naive']\ngrowth=['x']\nseeds=[0]\n", "grid.growth: unknown growth 'x'"),
        ("[grid]\nstrategies=['naive']\ngrowth=['none']\nseeds=[-1]\n", "grid.seeds"),
        ("[grid]\nstrategies=['naive']\ngrowth=['none']\nseeds=[0]\n[run]\nlr=0\n", "lr: must be a finite number > 0"),
        (
            "[grid]\nstrategies=['naive']\ngrowth=['none']\nseeds=[0]\n[run]\nlearning_rate=1\n",
            "run: unknown field(s) learning_rate",
        ),
        ("[grid]\nstrategies=['naive']\ngrowth=['none']\nseeds=[0]\n[extra]\n", "unknown section(s) extra"),
        ("[grid\n", "not valid TOML"),
        ("grid = 5\n", "[grid] must be a table"),
        ("[grid]\nstrategies=['naive']\ngrowth=['none']\nseeds=[0]\nstrategy = 5\n", "grid: unknown field(s) strategy"),
        ("strategy = 5\n[grid]\nstrategies=['naive']\ngrowth=['none']\nseeds=[0]\n", "[strategy] must be a table"),
        ("[grid]\nstrategies=['naive']\ngrowth=['none']\nseeds=[0, 0]\n", "grid.seeds: 0 listed more than once"),
        ("[grid]\nstrategies=['naive', 'naive']\ngrowth=['none']\nseeds=[0]\n", "grid.strategies: naive listed more"),
        ("[grid]\nstrategies=['naive']\ngrowth=['none', 'none']\nseeds=[0]\n", "grid.growth: none listed more"),
        (
            "[grid]\nstrategies=['naive']\ngrowth=['none']\nseeds=[4294967296]\n",
            "grid.seeds: seeds must be integers in",
        ),
        (
            "[grid]\nbenchmark='split-digits'\nstrategies=['naive']\ngrowth=['none']\nseeds=[0]\n[run]\n"
            "benchmark='split-mnist1d'\n",
            "benchmark: set in [grid]",
        ),
        ("[grid]\nstrategies=['naive']\ngrowth=['none']\nseeds=[0]\n[run]\nseed=3\n", "run.seed: a grid sets it"),
        ("[grid]\nstrategies=['naive']\ngrowth=['none']\nseeds=[0]\n[run]\nlr=true\n", "lr: must be a finite"),
        (
            "[grid]\nstrategies=['replay']\ngrowth=['none']\nseeds=[0]\n[strategy.replay]\nmem_size=-5\n",
            "strategy.replay: strategy 'replay': mem_size must be an integer >= 1",
        ),
        (
            "[grid]\nstrategies=['replay']\ngrowth=['none']\nseeds=[0]\n[strategy.replay]\ntrain_epochs=2\n",
            "train_epochs: a run setting",
        ),
        (
            "[grid]\nstrategies=['naive']\ngrowth=['none']\nseeds=[0]\nplasticity=['reset']\n",
            "grid.plasticity: unknown plasticity method 'reset'",
        ),
        (
            "[grid]\nstrategies=['naive']\ngrowth=['none']\nseeds=[0]\nplasticity=['redo', 'redo']\n",
            "grid.plasticity: redo listed more than once",
        ),
        (
            "[grid]\nstrategies=['naive']\ngrowth=['none']\nseeds=[0]\n[run]\nplasticity='redo'\n",
            "run.plasticity: a grid sets it per cell from grid.plasticity",
        ),
        (
            "[grid]\nstrategies=['naive']\ngrowth=['none']\nseeds=[0]\nplasticity=['redo']\n[plasticity.redo]\ntau=-1\n",
            "plasticity.redo: plasticity method 'redo': tau must be a finite number >= 0",
        ),
        (
            "[grid]\nstrategies=['naive']\ngrowth=['none']\nseeds=[0]\n[plasticity.cbp]\nrho=1\n",
            "plasticity.cbp: plasticity method 'cbp' has no argument(s) rho",
        ),
        (
            "[grid]\nstrategies=['naive']\ngrowth=['none']\nseeds=[0]\n[plasticity.shrink]\n",
            "plasticity.shrink: unknown plasticity method",
        ),
        ("[grid]\nstrategies=['joint']\ngrowth=['swe-svod']\nseeds=[0]\n", "the grid's axes leave no cell"),
        (  # settings no cell reads are refused, not ignored
            "[grid]\nstrategies=['naive']\ngrowth=['none']\nseeds=[0]\n[strategy.replay]\nmem_size=50\n",
            "strategy.replay: applies to no cell of this grid",
        ),
        (
            "[grid]\nstrategies=['naive']\ngrowth=['none']\nseeds=[0]\n[plasticity.redo]\ntau=0.1\n",
            "plasticity.redo: applies to no cell of this grid",
        ),
        (
            "[grid]\nstrategies=['naive']\ngrowth=['swe-svod', 'swe+svod']\nseeds=[0]\n",
            "grid.growth: 'swe-svod' and 'swe\\+svod' name the same growth method",
        ),
        ("[grid]\nstrategies=['naive']\ngrowth=['none']\nseeds=[0]\n[run]\ndata_root=5\n", "data_root: must be a path"),
        (
            "[grid]\nstrategies=['naive']\ngrowth=['none']\nseeds=[0]\n[run]\nthreads=true\n",
            "threads: must be an integer",
        ),
        ("[grid]\nstrategies=['naive']\ngrowth=['none']\nseeds=[0]\n[run]\ntau=inf\n", "tau: must be a finite"),
    ],
)
def test_invalid_grid_names_the_field(tmp_path, text, message, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_grid(path)
    assert main(["compare", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "clgrow: error:" in capsys.readouterr().err
    assert main(["compare", str(path), "--out", str(tmp_path / "o"), "--check"]) == 2  # --check refuses it too


def test_shipped_configs_are_valid(tmp_path):
    from pathlib import Path

    import tomllib

    from clgrow import experiments
    from tests.experiments.test_paper_cifar import fake_cifar100

    configs = sorted((Path(experiments.__file__).parent / "configs").glob("*.toml"))
    assert configs
    for path in configs:
        on_disk = tomllib.loads(path.read_text())["grid"].get("benchmark") == "split-cifar100"
        root = str(fake_cifar100(tmp_path / path.stem, 10, 10)) if on_disk else None
        grid = load_grid(path, data_root=root)
        assert grid.cells()


@pytest.mark.parametrize(
    "grow,message",
    [
        ({"extender": "random"}, "grow.extender: the growth method is set by growth"),
        ({"neurons": 3}, "run.grow: unknown field(s) neurons"),
        ({"neurons_per_experience": -2}, "grow.neurons_per_experience"),
        ({"extender_kwargs": {"passes": 0.5}}, "extender 'random' has no argument(s) passes"),
    ],
)
def test_run_grow_table_is_validated_by_name(grow, message):
    from clgrow.errors import ConfigError
    from clgrow.experiments.config import RunConfig

    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict({"growth": "random-uniform", "grow": grow})
    assert message in str(err.value)


def test_reference_strategies_take_the_no_growth_column_only(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(
        '[grid]\nbenchmark = "split-digits"\nstrategies = ["naive", "joint"]\n'
        'growth = ["none", "swe-svod", "fixed-final"]\nseeds = [0, 1]\n'
    )
    cells = [(c.strategy, c.growth_label) for c in load_grid(path).cells()]
    assert ("joint", "none") in cells and ("naive", "swe-svod") in cells and ("naive", "fixed-final") in cells
    assert not [c for c in cells if c[0] == "joint" and c[1] != "none"]
    assert len(cells) == 3 * 2 + 1 * 2


def test_plot_uses_only_the_grid_asked_for(grid_file, tmp_path, capsys):
    """Cells left by another grid in the same directory stay out of the table, named in a warning;
    a half-written summary counts as not done instead of breaking plot or compare."""
    out = tmp_path / "g"
    assert main(["compare", str(grid_file), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    table = (out / "table.md").read_text()
    cells = sorted(p.name for p in (out / "cells").iterdir())
    foreign = out / "cells" / "naive__none__seed99"
    foreign.mkdir()
    (foreign / "summary.json").write_text((out / "cells" / cells[0] / "summary.json").read_text())
    capsys.readouterr()
    assert main(["plot", str(out)]) == 0
    err = capsys.readouterr().err
    assert "left out 1 cell(s)" in err and "naive__none__seed99" in err
    assert (out / "table.md").read_text() == table
    (out / "cells" / cells[0] / "summary.json").write_text('{"benchmark": ')  # a crash mid-write
    assert main(["plot", str(out)]) == 0
    err = capsys.readouterr().err
    assert "unreadable" in err and cells[0] in err


def test_plasticity_axis_crosses_growth_and_reaches_table_and_cells(tmp_path, capsys):
    path = tmp_path / "p.toml"
    path.write_text(
        textwrap.dedent("""
        [grid]
        benchmark = "split-digits"
        strategies = ["naive", "joint"]
        growth = ["none", "random-uniform"]
        plasticity = ["none", "redo"]
        seeds = [0]

        [run]
        hidden_sizes = [8, 8]
        train_epochs = 1
        train_mb_size = 64

        [run.grow]
        neurons_per_experience = 4

        [plasticity.redo]
        tau = 0.3
    """)
    )
    cells = load_grid(path).cells()
    assert [(c.strategy, c.growth, c.plasticity) for c in cells] == [
        ("naive", "none", "none"),
        ("naive", "none", "redo"),
        ("naive", "random-uniform", "none"),
        ("naive", "random-uniform", "redo"),
        ("joint", "none", "none"),
    ]
    assert [c.plasticity_kwargs for c in cells if c.plasticity == "redo"] == [{"tau": 0.3}] * 2
    out = tmp_path / "g"
    assert main(["compare", str(path), "--out", str(out), "--workers", "2", "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "| strategy | growth | plasticity | seeds | final acc | learning acc |" in table and "units reset |" in table
    assert "| naive | random-uniform | redo |" in table and "| joint | none | none |" in table
    assert sorted(p.name for p in (out / "cells").iterdir()) == [
        "joint__none__seed0",
        "naive__none__redo__seed0",
        "naive__none__seed0",
        "naive__random-uniform__redo__seed0",
        "naive__random-uniform__seed0",
    ]
    rows = {(r["strategy"], r["growth"], r["plasticity"]): r for r in _rows(out)}
    assert (
        int(rows[("naive", "none", "redo")]["units_reset"]) > 0 == int(rows[("naive", "none", "none")]["units_reset"])
    )
    assert 0 < float(rows[("naive", "none", "redo")]["learning_accuracy"]) <= 1


def test_a_cell_written_before_a_new_run_field_still_counts_as_done(grid_file, tmp_path):
    """Resuming a grid after an upgrade: a saved configuration without a field that the current
    one holds at its default is the same configuration."""
    from clgrow.experiments.grid import _same_config

    cfg = load_grid(grid_file).cells()[0]
    saved = cfg.to_dict()
    del saved["plasticity"], saved["plasticity_kwargs"]
    assert _same_config(saved, cfg)
    assert not _same_config(saved, __import__("dataclasses").replace(cfg, plasticity="redo"))


def test_unreadable_grid_files_are_named(tmp_path, capsys):
    """Not UTF-8, or nested deeper than the reader can follow: refused naming the file, exit 2."""
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b"[grid]\nstrategies = ['na\xefve']\n")
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    for path, message in ((bad, "not a UTF-8 text file"), (deep, "nested too deeply")):
        with pytest.raises(ConfigError, match=message):
            load_grid(path)
        assert main(["compare", str(path), "--out", str(tmp_path / "o")]) == 2
        assert str(path) in capsys.readouterr().err


def test_result_files_are_written_atomically_under_names_of_their_own(tmp_path, monkeypatch):
    """Two writers never share a temporary file, and a failed write leaves neither a partial file
    nor its temporary behind (figures included)."""
    import os

    from clgrow.experiments import plots
    from clgrow.strategies.results import atomic_write_text

    target = tmp_path / "summary.json"
    atomic_write_text(target, "old")
    names = []
    real = os.replace

    def failing(src, dst):
        names.append(os.path.basename(src))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    fig = plots.plt.figure()
    with pytest.raises(OSError):
        plots._save(fig, tmp_path / "figure.png")
    monkeypatch.setattr(os, "replace", real)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
    assert str(os.getpid()) in names[0] and str(os.getpid()) in names[1]


def test_a_cell_summary_with_a_wrongly_typed_field_is_not_done(tmp_path, capsys):
    """It is reported and run again, not counted as done (which crashed every later table)."""
    import json

    from clgrow.experiments.grid import _load
    from clgrow.strategies.summary import RunSummary

    good = RunSummary(
        benchmark="split-digits",
        strategy="naive",
        growth="none",
        seed=0,
        n_experiences=2,
        final_accuracy=0.5,
        average_forgetting=0.1,
        stream_accuracy=[0.9, 0.5],
        forgetting=[0.0, 0.1],
        accuracy_matrix=[[0.9, None], [0.8, 0.2]],
        dead_fraction=[0.1, 0.2],
        dormant_fraction=[0.1, 0.2],
        new_dead_fraction=[None, None],
        new_dormant_fraction=[None, None],
        cohort_dormant={},
        cohort_dead={},
        hidden_sizes=[[8], [8]],
        final_hidden_sizes=[8],
        parameters=100,
        train_seconds=1.0,
        growth_seconds=0.0,
        epoch_seconds_median=0.5,
    ).to_dict()
    assert RunSummary.from_dict(good).seed == good["seed"]
    for field, value in (
        ("final_accuracy", "high"),
        ("seed", "0"),
        ("accuracy_matrix", [["x"]]),
        ("hidden_sizes", {"a": 1}),
    ):
        bad = {**good, field: value}
        with pytest.raises(ConfigError, match=f"field {field} has the wrong type"):
            RunSummary.from_dict(bad)
        cell = tmp_path / field
        cell.mkdir()
        (cell / "summary.json").write_text(json.dumps(bad))
        assert _load(cell) is None
        assert "counts as not done" in capsys.readouterr().err
    # a cell of clgrow 0.1's ResNet (its widths are the blocks' alone) is refused, one of its MLP resumes
    for model, refused in (("resnet", True), ("mlp", False)):
        cell = tmp_path / f"old-{model}"
        cell.mkdir()
        (cell / "summary.json").write_text(
            json.dumps({**good, "versions": {"clgrow": "0.1.0"}, "config": {"model": model}})
        )
        if refused:
            with pytest.raises(ConfigError, match="clgrow 0.1.0, whose ResNet grew only its blocks' inner channels"):
                _load(cell)
        else:
            assert _load(cell) is not None


def test_tables_show_seeds_and_warn_about_unequal_seeds_and_dropped_values():
    """A half-finished grid or a non-finite value is said, not averaged away silently."""
    import dataclasses
    import math

    from clgrow.experiments.tables import aggregate, markdown_table, table_warnings
    from clgrow.strategies.summary import RunSummary

    base = RunSummary(
        benchmark="split-digits",
        strategy="naive",
        growth="none",
        seed=0,
        n_experiences=1,
        final_accuracy=0.5,
        average_forgetting=0.0,
        stream_accuracy=[0.5],
        forgetting=[0.0],
        accuracy_matrix=[[0.5]],
        dead_fraction=[0.1],
        dormant_fraction=[0.2],
        new_dead_fraction=[None],
        new_dormant_fraction=[None],
        cohort_dormant={},
        cohort_dead={},
        hidden_sizes=[[8]],
        final_hidden_sizes=[8],
        parameters=10,
        train_seconds=1.0,
        growth_seconds=0.0,
        epoch_seconds_median=1.0,
    )
    cells = [
        dataclasses.replace(base, seed=0),
        dataclasses.replace(base, seed=1, final_accuracy=math.nan),
        dataclasses.replace(base, growth="swe-svod", seed=0),
    ]
    rows = aggregate(cells)
    assert [r["seed_list"] for r in rows] == [[0, 1], [0]]
    table = markdown_table(rows)
    assert table.splitlines()[0].startswith("| strategy | growth | seeds |")
    assert table.splitlines()[2].startswith(
        "| naive | none | 2 | 50.0 |"
    )  # the NaN left out (one seed: no interval)...
    notes = table_warnings(rows)
    assert any("different seeds" in n and "naive/swe-svod (seeds 0)" in n for n in notes)
    assert any("final acc is not finite for seed(s) 1" in n for n in notes)  # ...and said
    assert table_warnings(aggregate([cells[0]])) == []


def test_sigterm_ends_compare_and_its_workers(tmp_path):
    """SIGTERM to `compare` ends the whole process tree (no worker goes on training), exits like
    Ctrl-C (130, with the resume message) and leaves no traceback, also when it comes twice."""
    import signal
    import subprocess
    import sys
    import time

    psutil = pytest.importorskip("psutil")
    grid = tmp_path / "g.toml"
    grid.write_text(
        textwrap.dedent("""
        [grid]
        benchmark = "split-digits"
        strategies = ["naive", "replay"]
        growth = ["none", "swe-svod"]
        seeds = [0, 1]
        [run]
        train_epochs = 200
    """)
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clgrow.experiments.cli",
            "compare",
            str(grid),
            "--out",
            str(tmp_path / "o"),
            "--quiet",
            "--workers",
            "2",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    parent, kids = psutil.Process(proc.pid), []
    deadline = time.monotonic() + 60
    while len(kids) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        kids = parent.children(recursive=True)
    assert len(kids) >= 2, "the grid did not start its workers"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # a supervisor's second try changes nothing
    assert proc.wait(60) == 130
    err = proc.stderr.read()
    assert "interrupted" in err and "Traceback" not in err
    time.sleep(0.5)
    assert [k.pid for k in kids if k.is_running() and k.status() != psutil.STATUS_ZOMBIE] == []


def test_a_collapsed_run_is_flagged_by_its_definition_and_warned_about():
    from clgrow.experiments.tables import table_warnings
    from clgrow.strategies.summary import RunSummary

    collapsed = RunSummary.is_collapsed
    assert collapsed(0.10, 0.1, 1.0, [])  # chance-level with every unit dead
    assert not collapsed(0.10, 0.1, 0.99, [])  # a unit alive: not that case
    assert not collapsed(0.30, 0.1, 1.0, [])
    assert collapsed(0.5, 0.1, 0.2, [[1.0, 1.2], [0.9, 0.9, 0.95]])  # the loss never decreased
    assert not collapsed(0.5, 0.1, 0.2, [[1.0, 1.2], [0.9, 0.5]])
    assert not collapsed(0.5, 0.1, 0.2, [[1.0], [0.9]])  # one epoch each: nothing to judge
    row = {"strategy": "naive", "growth": "none", "seed_list": [0, 1], "collapsed_seeds": [1], "dropped": {}}
    assert any("seed(s) 1 collapsed" in n for n in table_warnings([row]))


def test_a_second_compare_on_the_same_directory_is_refused(grid_file, tmp_path, capsys):
    from clgrow.experiments.grid import grid_lock

    out = tmp_path / "g"
    with grid_lock(out):
        assert main(["compare", str(grid_file), "--out", str(out), "--quiet"]) == 2
        assert "another clgrow compare (pid" in capsys.readouterr().err
    with grid_lock(out):  # released, and taken again
        pass


def test_unfinished_cells_are_named_and_a_run_is_done_only_with_its_figures(tmp_path, monkeypatch):
    """A cell with metrics but no summary is named as left out; the runner writes summary.json
    (the mark of a finished cell) only after its figures, so a failed figure leaves it not done."""
    from clgrow.experiments import plots
    from clgrow.experiments.config import RunConfig
    from clgrow.experiments.grid import load_cells
    from clgrow.experiments.runner import run

    (tmp_path / "cells" / "naive__none__seed7").mkdir(parents=True)
    (tmp_path / "cells" / "naive__none__seed7" / "metrics.csv").write_text("experience,metric,value\n")
    assert load_cells(tmp_path) == ([], ["naive__none__seed7"])

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plots, "plot_run", no_space)
    cfg = RunConfig(benchmark="split-digits", growth="none", hidden_sizes=[8], train_epochs=1, n_experiences=2)
    with pytest.raises(OSError):
        run(cfg.resolve(), tmp_path / "run")
    assert (tmp_path / "run" / "metrics.csv").is_file() and not (tmp_path / "run" / "summary.json").exists()


def _cells(values: dict[tuple[str, int], tuple[float, float]]):
    """RunSummaries of naive x growth x seed with (final accuracy, forgetting) as given."""
    import dataclasses

    from clgrow.strategies.summary import RunSummary

    base = RunSummary(
        benchmark="split-digits",
        strategy="naive",
        growth="none",
        seed=0,
        n_experiences=1,
        final_accuracy=0.5,
        average_forgetting=0.0,
        stream_accuracy=[0.5],
        forgetting=[0.0],
        accuracy_matrix=[[0.5]],
        dead_fraction=[0.1],
        dormant_fraction=[0.2],
        new_dead_fraction=[None],
        new_dormant_fraction=[None],
        cohort_dormant={},
        cohort_dead={},
        hidden_sizes=[[8]],
        final_hidden_sizes=[8],
        parameters=10,
        train_seconds=1.0,
        growth_seconds=0.0,
        epoch_seconds_median=1.0,
    )
    return [
        dataclasses.replace(base, growth=g, seed=s, final_accuracy=a, average_forgetting=f)
        for (g, s), (a, f) in values.items()
    ]


def test_intervals_and_paired_differences_are_recomputed_from_the_cells():
    """Student-t intervals over seeds and differences paired by seed, recomputed by hand."""
    import math
    import statistics

    from scipy import stats

    from clgrow.experiments.tables import aggregate, markdown_table, paired_rows, paired_table

    acc = {"fixed-final": [0.80, 0.82, 0.90], "swe-svod": [0.83, 0.86, 0.92]}
    cells = _cells({(g, s): (a, 0.1 * s) for g, vals in acc.items() for s, a in enumerate(vals)})
    rows = aggregate(cells)
    for r in rows:
        vals = acc[r["growth"]]
        half = stats.t.ppf(0.975, 2) * statistics.stdev(vals) / math.sqrt(3)
        assert r["final_accuracy"] == pytest.approx(statistics.fmean(vals))
        assert r["final_accuracy_ci"] == pytest.approx(half)
    assert f"{100 * statistics.fmean(acc['swe-svod']):.1f} ± " in markdown_table(rows)
    (diff,) = paired_rows(rows, "fixed-final")
    d = [b - a for a, b in zip(acc["fixed-final"], acc["swe-svod"])]  # +0.03, +0.04, +0.02
    iv = diff["final_accuracy"]
    assert iv.n == 3 and iv.mean == pytest.approx(statistics.fmean(d))
    assert iv.half == pytest.approx(stats.t.ppf(0.975, 2) * statistics.stdev(d) / math.sqrt(3))
    assert iv.excludes_zero  # paired, the seeds agree: +2..+4 points each
    unpaired = rows[1]["final_accuracy_ci"] + rows[0]["final_accuracy_ci"]
    assert iv.half < unpaired  # what pairing buys: the seeds' shared noise cancels
    assert diff["average_forgetting"].mean == pytest.approx(0.0) and not diff["average_forgetting"].excludes_zero
    table = paired_table([diff])
    assert "| naive | swe-svod | naive/fixed-final | 3 | +3.0 [" in table and "] * |" in table


def test_paired_differences_use_only_the_seeds_both_rows_ran():
    from clgrow.experiments.tables import aggregate, paired_rows

    cells = _cells(
        {
            ("none", 0): (0.5, 0.0),
            ("none", 1): (0.6, 0.0),
            ("none", 2): (0.7, 0.0),
            ("swe-svod", 1): (0.9, 0.0),
            ("swe-svod", 2): (0.8, 0.0),
        }
    )
    (diff,) = paired_rows(aggregate(cells), "naive/none")
    assert diff["final_accuracy"].n == 2 and diff["final_accuracy"].mean == pytest.approx((0.3 + 0.1) / 2)


@pytest.mark.parametrize(
    "baseline, message",
    [
        ("nope", "'nope' is not in grid.growth"),
        ("replay/none", "'replay' is not in grid.strategies"),
        ("none/redo", "'redo' is not in grid.plasticity"),
        ("", "give [STRATEGY/]GROWTH[/PLASTICITY]"),
    ],
)
def test_a_baseline_must_name_a_row_of_the_grid(tmp_path, capsys, baseline, message):
    from clgrow.experiments.cli import main

    grid = tmp_path / "g.toml"
    grid.write_text(
        '[grid]\nbenchmark = "split-digits"\nstrategies = ["naive"]\ngrowth = ["none", "swe-svod"]\nseeds = [0]\n'
    )
    assert main(["compare", str(grid), "--out", str(tmp_path / "o"), "--check", "--baseline", baseline]) == 2
    assert message in capsys.readouterr().err


def test_fixed_compute_trains_a_fixed_model_for_the_growth_runs_multiply_adds(tmp_path):
    """The fixed-compute row: the widths swe-svod reached, and the epochs that make its training
    spend what the growth run spent in training and growth (recomputed here by hand)."""
    import json

    from clgrow.experiments.cli import main

    grid = tmp_path / "g.toml"
    grid.write_text(
        textwrap.dedent("""
        [grid]
        benchmark = "split-digits"
        strategies = ["naive"]
        growth = ["swe-svod", "fixed-final", "fixed-compute"]
        seeds = [0]
        [run]
        hidden_sizes = [8]
        train_epochs = 1
        train_mb_size = 64
        [run.grow]
        neurons_per_experience = 8
        extender_kwargs = { passes = 2.0 }
        """)
    )
    assert main(["compare", str(grid), "--out", str(tmp_path / "o"), "--workers", "1", "--quiet"]) == 0
    cells = {d.name: json.loads((d / "summary.json").read_text()) for d in (tmp_path / "o" / "cells").iterdir()}
    ref, final, matched = (cells[f"naive__{g}__seed0"] for g in ("swe-svod", "fixed-final", "fixed-compute"))
    assert final["final_hidden_sizes"] == matched["final_hidden_sizes"] == ref["final_hidden_sizes"]
    (w,) = ref["final_hidden_sizes"]
    per_sample = 3 * (64 * w + w * 10) - 64 * w
    budget = ref["compute"]["train_macs"] + ref["compute"]["growth_macs"]
    epochs = max(1, round(budget / (ref["compute"]["train_samples"] * per_sample)))
    assert matched["train_epochs"] == epochs >= 2 and final["train_epochs"] == 1
    assert matched["compute"]["train_macs"] == epochs * final["compute"]["train_macs"]
    assert matched["growth"] == "fixed-compute"


_DIES = '''
import os
import signal

from clgrow.registry import strategies


@strategies.register("dies")
def dies(**common):
    """A strategy whose worker is killed as it is built (out of memory, a signal)."""
    os.kill(os.getpid(), signal.SIGKILL)
'''


def test_a_killed_worker_names_its_cell_and_the_finished_cells_stay(tmp_path):
    """A cell whose worker process dies ends compare with exit 1 naming that cell, no
    BrokenProcessPool traceback, and the cells finished before it kept for a rerun."""
    import os
    import subprocess
    import sys

    (tmp_path / "dies_here.py").write_text(_DIES)
    grid = (
        '[grid]\nbenchmark = "split-digits"\nn_experiences = 2\nimports = ["dies_here"]\n'
        'strategies = {}\ngrowth = ["none"]\nseeds = [0]\n'
        "[run]\nhidden_sizes = [8]\ntrain_epochs = 1\ntrain_mb_size = 64\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    code = "import sys; from clgrow.experiments.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-c", code, "compare", "g.toml", "--out", "g", "--workers", "2", "--quiet"]
    (tmp_path / "g.toml").write_text(grid.format('["naive"]'))  # one cell finished first
    assert subprocess.run(argv, capture_output=True, env=env, cwd=tmp_path, timeout=600).returncode == 0
    (tmp_path / "g.toml").write_text(grid.format('["naive", "dies"]'))  # then the grid grows by one that dies
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 1, done.stderr
    assert "cell dies__none__seed0: its worker process died" in done.stderr
    assert "Traceback" not in done.stderr and "BrokenProcessPool" not in done.stderr
    assert (tmp_path / "g" / "cells" / "naive__none__seed0" / "summary.json").is_file()


def test_a_baseline_pairs_each_prune_row_with_the_baseline_at_its_own_prune():
    """A prune grid with a baseline: each row is compared with the baseline row at its own prune
    value (or the one the baseline names, ``fixed-final/prune-none``), none is dropped."""
    import dataclasses

    from clgrow.experiments.tables import aggregate, paired_rows

    plain = _cells({("fixed-final", s): (0.5, 0.0) for s in range(2)} | {("swe-svod", s): (0.6, 0.0) for s in range(2)})
    pruned = [dataclasses.replace(c, prune="swe", final_accuracy=c.final_accuracy + 0.2) for c in plain]
    rows = aggregate(plain + pruned)
    diffs = {(d["growth"], d["prune"]): d for d in paired_rows(rows, "fixed-final")}
    assert set(diffs) == {("swe-svod", "none"), ("swe-svod", "swe")}
    assert diffs[("swe-svod", "swe")]["baseline"] == "naive/fixed-final/prune-swe"
    assert diffs[("swe-svod", "swe")]["final_accuracy"].mean == pytest.approx(0.1)
    named = {(d["growth"], d["prune"]): d for d in paired_rows(rows, "fixed-final/prune-none")}
    assert set(named) == {("swe-svod", "none"), ("swe-svod", "swe"), ("fixed-final", "swe")}
    assert named[("swe-svod", "swe")]["final_accuracy"].mean == pytest.approx(0.3)


def test_check_lists_every_axis_of_every_cell(tmp_path, capsys):
    from clgrow.experiments.cli import main

    grid = tmp_path / "g.toml"
    grid.write_text(
        '[grid]\nbenchmark = "split-digits"\nstrategies = ["naive"]\ngrowth = ["swe-svod"]\nseeds = [0]\n'
        'prune = ["none", "drop"]\nplasticity = ["none", "redo"]\n'
    )
    assert main(["compare", str(grid), "--out", str(tmp_path / "o"), "--check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and len(set(lines)) == 4
    assert "naive / swe-svod / plasticity redo / prune drop / seed 0" in lines
