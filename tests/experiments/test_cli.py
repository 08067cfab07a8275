"""The clgrow CLI end to end on embedded data, and its errors (exit code 2)."""

from __future__ import annotations

import csv
import json

import pytest

from clgrow.experiments.cli import main
from tests.experiments.conftest import TINY, TINY_FIXED, TINY_MODEL


def _metrics(path):
    with open(path / "metrics.csv") as f:
        return [(r["experience"], r["metric"], r["value"]) for r in csv.DictReader(f) if "Time" not in r["metric"]]


def test_run_end_to_end_writes_summary_metrics_and_figures(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                *TINY,
                "--strategy",
                "replay",
                "--growth",
                "swe-svod",
                "--seed",
                "3",
                "--set",
                "mem_size=50",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    s = json.loads((out / "summary.json").read_text())
    for key in [
        "benchmark",
        "strategy",
        "growth",
        "seed",
        "final_accuracy",
        "average_forgetting",
        "accuracy_matrix",
        "dead_fraction",
        "dormant_fraction",
        "new_dead_fraction",
        "new_dormant_fraction",
        "hidden_sizes",
        "parameters",
        "train_seconds",
        "growth_seconds",
        "versions",
    ]:
        assert key in s, key
    assert (s["strategy"], s["growth"], s["seed"]) == ("replay", "swe-svod", 3)
    assert s["hidden_sizes"][0] == [8, 8] and sum(s["hidden_sizes"][-1]) == 16 + 4 * 4
    assert len(s["accuracy_matrix"]) == 5 and s["accuracy_matrix"][4][4] is not None
    assert s["accuracy_matrix"][0][1] is not None  # every experience evaluated after every training step
    assert s["config"]["strategy_kwargs"] == {"mem_size": 50}
    # forgetting as the README defines it: the mean drop, over the experiences trained before the
    # last, from the accuracy right after training on each to the accuracy after the last
    m = s["accuracy_matrix"]
    for i in range(1, 5):
        assert s["forgetting"][i] == pytest.approx(sum(m[j][j] - m[i][j] for j in range(i)) / i, abs=1e-9)
    # the training loss of every epoch (TINY trains one epoch per experience), and no collapse
    assert [len(e) for e in s["train_loss"]] == [1] * 5 and s["collapsed"] is False
    assert sum(1 for r in _metrics(out) if r[1] == "TrainLoss/train_phase/train_stream") == 5
    # growth disruption: none at experience 0, one value per growing experience, from its events
    assert s["growth_disruption"][0] is None and all(v is not None for v in s["growth_disruption"][1:])
    ev = s["growth_events"][0]
    assert [c["experience"] for c in ev["disruption"]] == [0] and ev["probe_seconds"] >= 0
    assert s["growth_disruption"][1] == pytest.approx(
        ev["disruption"][0]["accuracy_before"] - ev["disruption"][0]["accuracy_after"]
    )
    assert {p.name for p in (out / "figures").glob("*.png")} >= {
        "accuracy_matrix.png",
        "hidden_sizes.png",
        "metrics_per_experience.png",
    }
    assert "final stream accuracy" in capsys.readouterr().out


def test_seed_makes_a_run_bit_for_bit_reproducible(tmp_path):
    args = ["run", *TINY, "--strategy", "naive", "--growth", "swe-svod", "--seed", "1"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    a, b = _metrics(tmp_path / "a"), _metrics(tmp_path / "b")
    assert a == b and len(a) > 50
    assert (
        main(["run", *TINY, "--strategy", "naive", "--growth", "swe-svod", "--seed", "2", "--out", str(tmp_path / "c")])
        == 0
    )
    assert _metrics(tmp_path / "c") != a


def test_match_final_size_trains_a_fixed_model_at_the_grown_widths(tmp_path):
    out = tmp_path / "m"
    assert main(["run", *TINY, "--growth", "swe-svod", "--match-final-size", "--out", str(out)]) == 0
    ref = json.loads((out / "reference" / "summary.json").read_text())
    fixed = json.loads((out / "summary.json").read_text())
    assert fixed["growth"] == "fixed-final" and fixed["growth_events"] == []
    assert fixed["hidden_sizes"][0] == ref["final_hidden_sizes"] == fixed["final_hidden_sizes"]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["run", "--out", "x", "--benchmark", "nope"], "invalid choice: 'nope'"),
        (["run", "--out", "x", "--growth", "wat"], "growth: unknown growth 'wat'"),
        (["run", "--out", "x", "--growth", "swe+nope"], "unknown distributor 'nope'"),
        (["run", "--out", "x", "--epochs", "0"], "train_epochs: must be an integer >= 1"),
        (["run", "--out", "x", "--hidden", "0"], "hidden_sizes"),
        (["run", "--out", "x", "--lr", "-1"], "lr: must be a finite number > 0"),
        (["run", "--out", "x", "--experiences", "3"], "cannot be split evenly into 3 experiences"),
        (["run", "--out", "x", "--set", "mem_size"], "--set expects KEY=VALUE"),
        (["run", "--out", "x", "--strategy", "naive", "--set", "mem_size=3"], "strategy 'naive'"),
        (
            ["run", "--out", "x", "--growth", "none", "--match-final-size"],
            "--match-final-size/--match-final-compute need --growth",
        ),
        (["run"], "the following arguments are required: --out"),
        (
            ["run", "--out", "x", "--growth", "random-uniform", "--swe-passes", "0.2"],
            "--swe-passes sets an argument of extender 'swe', but --growth random-uniform uses extender 'random'",
        ),
        (["run", "--out", "x", "--growth", "none", "--svod-vote-passes", "0.2"], "uses no growth"),
        (["run", "--out", "x", "--swe-coupling", "bogus"], "extender_kwargs: extender 'swe': coupling must be one of"),
        (["run", "--out", "x", "--swe-passes", "abc"], "argument --swe-passes: invalid float value: 'abc'"),
        (["run", "--out", "x", "--neurons", "-3"], "grow.neurons_per_experience: must be an integer >= 0"),
        (["run", "--out", "x", "--layers", "-1"], "grow.layers"),
        (["run", "--out", "x", "--growth", "fixed-final"], "use --growth METHOD --match-final-size"),
        (["run", "--out", "x", "--strategy", "joint"], "growth: strategy 'joint' is a reference row without growth"),
        (
            ["run", "--out", "x", "--strategy", "pnn", "--growth", "none"],
            "task_labels: strategy 'pnn' needs task labels",
        ),
        (
            ["run", "--out", "x", "--strategy", "pnn", "--growth", "none", "--task-labels", "--hidden", "8", "9"],
            "hidden_sizes: strategy 'pnn' builds columns of one width",
        ),
        (["run", "--out", "x", "--device", "tpu"], "device: 'tpu' is not a device"),
        (
            ["run", "--out", "x", "--optimizer", "adam", "--momentum", "0.5"],
            "momentum: does not apply to this run: it applies to optimizer 'sgd' only",
        ),
        (["run", "--out", "x", "--optimizer", "sgd", "--momentum", "1.5"], "momentum: must be a number in [0, 1)"),
        (["run", "--out", "x", "--weight-decay", "-1"], "weight_decay: must be a finite number >= 0"),
        (["run", "--out", "x", "--lr", "inf"], "lr: must be a finite number > 0"),
        (
            ["run", "--out", "x", "--strategy", "replay", "--set", "mem_size=abc"],
            "strategy_kwargs: strategy 'replay': mem_size must be an integer >= 1 (got 'abc')",
        ),
        (
            ["run", "--out", "x", "--strategy", "replay", "--set", "mem_size=-5"],
            "mem_size must be an integer >= 1 (got -5)",
        ),
        (["run", "--out", "x", "--set", "train_epochs=3"], "strategy_kwargs.train_epochs: a run setting"),
        (["run", "--out", "x", "--set", "neurons_per_experience=3"], "neurons_per_experience: a growth setting"),
        (
            ["run", "--out", "x", "--strategy", "ewc", "--set", "ewc_lambda=NaN"],
            "ewc_lambda must be a finite number >= 0 (got nan)",
        ),
        (["run", "--out", "x", "--seed", str(2**32)], "seed: must be an integer in [0, 4294967295]"),
        (["run", "--out", "x", "--hidden", "16", "--max-hidden-size", "8"], "max_hidden_size 8 leaves no room"),
        (["run", "--out", "afile"], "--out afile: exists and is not a directory"),
        (["run", "--out", "x", "--plasticity", "reset"], "argument --plasticity: invalid choice: 'reset'"),
        (
            ["run", "--out", "x", "--plasticity", "cbp", "--redo-tau", "0.1"],
            "--redo-tau sets an argument of plasticity method 'redo', but --plasticity is 'cbp'",
        ),
        (["run", "--out", "x", "--plasticity", "redo", "--redo-tau", "-1"], "plasticity method 'redo': tau must be"),
        (
            ["run", "--out", "x", "--plasticity", "cbp", "--cbp-decay", "1"],
            "decay must be a finite number >= 0 and < 1",
        ),
        (
            ["run", "--out", "x", "--strategy", "joint", "--growth", "none", "--plasticity", "redo"],
            "plasticity: strategy 'joint' is a reference row without growth, resets or pruning",
        ),
        (["compare", "missing.toml", "--out", "x"], "config file not found"),
        (["plot", "."], "neither a run directory"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(argv))
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_data_root_names_the_expected_files(tmp_path, capsys):
    assert main(["run", "--benchmark", "split-mnist", "--out", str(tmp_path / "o")]) == 2
    assert "pass --data-root DIR" in capsys.readouterr().err
    assert (
        main(["run", "--benchmark", "split-cifar10", "--data-root", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    )
    err = capsys.readouterr().err
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_1") in err and "never downloads" in err


def test_list_names_everything(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in [
        "split-mnist-5k",
        "split-cifar100",
        "replay",
        "swe",
        "svod",
        "gradmax",
        "swe-svod-paper",
        "redo",
        "cbp",
    ]:
        assert word in out


def test_growth_flags_come_from_the_config_and_the_methods_signatures(tmp_path):
    """Every GrowthConfig setting and every SWE/SVoD argument is settable, and reaches the run."""
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                *TINY,
                "--growth",
                "swe-svod-paper",
                "--grow-from-experience",
                "2",
                "--max-hidden-size",
                "14",
                "--no-carry-optimizer-state",
                "--no-reset-optimizer",
                "--swe-passes",
                "0.25",
                "--swe-partners",
                "4",
                "--svod-vote-passes",
                "0.5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    s = json.loads((out / "summary.json").read_text())
    grow = s["config"]["grow"]
    assert (grow["grow_from_experience"], grow["max_hidden_size"], grow["carry_optimizer_state"]) == (2, 14, False)
    assert grow["extender_kwargs"] == {"passes": 0.25, "partners": 4}
    assert grow["distributor_kwargs"] == {"vote_passes": 0.5}
    assert next(e["experience"] for e in s["growth_events"]) == 2
    assert max(s["final_hidden_sizes"]) <= 14


def test_reference_rows_run_end_to_end(tmp_path):
    """joint trains once on everything (one evaluated row); pnn on task labels with its own model."""
    tiny = [a for a in TINY if a not in ("--neurons", "4")]
    out = tmp_path / "joint"
    assert (
        main(
            [
                "run",
                *tiny,
                "--strategy",
                "joint",
                "--growth",
                "none",
                "--optimizer",
                "adamw",
                "--weight-decay",
                "0.01",
                "--device",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    s = json.loads((out / "summary.json").read_text())
    assert s["final_accuracy"] == s["stream_accuracy"][0] and s["stream_accuracy"][1:] == [None] * 4
    assert all(v is not None for v in s["accuracy_matrix"][0]) and s["device"] == "cpu"
    assert s["config"]["optimizer"] == "adamw" and s["config"]["weight_decay"] == 0.01
    out = tmp_path / "pnn"
    assert main(["run", *tiny, "--strategy", "pnn", "--growth", "none", "--task-labels", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["final_accuracy"] > 0.5 and s["average_forgetting"] == pytest.approx(0.0, abs=1e-9)


_BLOWS_UP = """
import torch.nn as nn


class Net(nn.Module):  # finite when checked (eval), non-finite once it trains
    def __init__(self, input_size, num_classes):
        super().__init__()
        self.a, self.head = nn.Linear(input_size, 8), nn.Linear(8, num_classes)

    def forward(self, x):
        out = self.head(self.a(x.flatten(1)).relu())
        return out * float("inf") if self.training else out
"""


def test_a_diverged_run_exits_1_naming_where_and_writes_no_summary(tmp_path, monkeypatch, capsys):
    (tmp_path / "blowsup.py").write_text(_BLOWS_UP)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "div"
    assert main(["run", *TINY_MODEL, "--model", "blowsup:Net", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "diverged" in err and "at experience 0, epoch 0" in err
    assert not (out / "summary.json").exists()


def test_interrupt_and_broken_pipe_end_without_a_traceback(monkeypatch, capsys):
    from clgrow.experiments import cli, commands

    def interrupted(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "list_command", interrupted)
    assert cli.main(["list"]) == 130
    assert "interrupted" in capsys.readouterr().err

    def broken(*a, **k):
        raise BrokenPipeError

    monkeypatch.setattr(commands, "list_command", broken)
    assert cli.main(["list"]) == 0


def test_truncated_data_files_are_named_not_a_traceback(tmp_path, capsys):
    from clgrow.experiments.benchmarks import expected_files

    for f in expected_files("split-mnist", tmp_path):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"\x00\x00\x08\x03" + b"\x01" * 20)  # an idx header, then too little data
    assert (
        main(
            ["run", "--benchmark", "split-mnist", "--data-root", str(tmp_path), "--out", str(tmp_path / "o"), "--quiet"]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert f"the files under data root {tmp_path} could not be read" in err and "Traceback" not in err


_BAD_GRID = """
[grid]
strategies = ["naive"]
growth = ["swe-svod", "swe+nope"]
seeds = [0]
"""


@pytest.mark.parametrize(
    "argv,torch_ok,rc",
    [
        (["--help"], False, 0),
        (["compare", "--workers"], False, 2),  # an argument error
        (["plot", "/nonexistent-dir"], False, 2),
        (["compare", "missing.toml", "--out", "o"], False, 2),
        (["compare", "{grid}", "--out", "o"], False, 2),  # a config error: unknown distributor
        (["list"], False, 0),
        (["run", "--help"], False, 0),
        (["run", "--benchmark", "nope", "--out", "o"], False, 2),
        (["run", "--lr", "-1", "--out", "o"], False, 2),  # a config error
        (["run", "--growth", "swe+nope", "--out", "o"], False, 2),
        (["run", "--redo-tau", "0.3", "--out", "o"], False, 2),  # an argument of a method not chosen
        (["run", "--swe-passes", "-1", "--out", "o"], True, 2),  # SWE's own range check: builds it
    ],
)
def test_answers_before_importing_torch_or_avalanche(tmp_path, argv, torch_ok, rc):
    import subprocess
    import sys

    grid = tmp_path / "bad.toml"
    grid.write_text(_BAD_GRID)
    argv = [a.format(grid=grid) for a in argv]
    code = (
        "import sys\nfrom clgrow.experiments.cli import main\n"
        f"try:\n    rc = main({argv!r})\nexcept SystemExit as e:\n    rc = e.code\n"
        "print('MODULES', 'avalanche' in sys.modules, 'torch' in sys.modules, rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("MODULES"))
    _, avalanche, torch_loaded, code_ = line.split()
    assert (avalanche, code_) == ("False", str(rc)), argv
    if not torch_ok:
        assert torch_loaded == "False", argv


def test_plasticity_run_end_to_end_records_resets_and_learning_accuracy(tmp_path):
    out = tmp_path / "redo"
    assert (
        main(
            [
                "run",
                *TINY,
                "--growth",
                "random-uniform",
                "--plasticity",
                "redo",
                "--redo-tau",
                "0.3",
                "--redo-every",
                "5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    s = json.loads((out / "summary.json").read_text())
    assert s["plasticity"] == "redo" and s["config"]["plasticity_kwargs"] == {"tau": 0.3, "every": 5}
    assert len(s["units_reset"]) == s["n_experiences"] and sum(s["units_reset"]) > 0
    diag = [s["accuracy_matrix"][i][i] for i in range(s["n_experiences"])]
    assert s["learning_accuracy"] == pytest.approx(sum(diag) / len(diag))
    assert (out / "figures" / "reset_dormancy.png").is_file()


def test_an_empty_out_is_refused_not_the_current_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", *TINY, "--growth", "none", "--out", ""]) == 2
    assert main(["run", *TINY, "--growth", "none", "--out", " ", "--check"]) == 2
    assert "--out: give a directory" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_idx_files_with_zero_images_are_named(tmp_path, capsys):
    import struct

    from clgrow.experiments.benchmarks import expected_files

    for f in expected_files("split-mnist", tmp_path):
        f.parent.mkdir(parents=True, exist_ok=True)
        images = "images" in f.name
        dims = (0, 28, 28) if images else (0,)
        f.write_bytes(b"\x00\x00\x08" + bytes([len(dims)]) + b"".join(struct.pack(">I", d) for d in dims))
    assert (
        main(
            ["run", "--benchmark", "split-mnist", "--data-root", str(tmp_path), "--out", str(tmp_path / "o"), "--quiet"]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "holds no images" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--growth", "random+fixed", "--fixed-layer", "5"], "grow.distributor_kwargs.layer: layer 5 does not exist"),
        (["--layers", "0", "7"], "grow.layers: layers [7] do not exist"),
        (["--benchmark", "split-mnist"], "data_root: split-mnist reads its data from disk"),
        (["--benchmark", "split-mnist", "--data-root", "{tmp}"], "data_root: split-mnist: missing under data root"),
    ],
)
def test_check_refuses_what_the_run_would_refuse_later(tmp_path, capsys, argv, message):
    """--check answers as the run would: these were accepted and refused only after experience 0."""
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["run", *argv, "--out", str(tmp_path / "o"), "--check"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_runs_that_cannot_fit_in_memory_are_refused_with_the_figure(tmp_path, capsys):
    """Sizes chosen by the user (units per step, experiences) are estimated before anything is
    built, instead of growing memory until the kernel kills the process."""
    from clgrow.experiments.benchmarks import expected_files

    for f in expected_files("permuted-mnist", tmp_path):  # present (never read: refused first)
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"")
    for argv, named in (
        (["--growth", "random-svod", "--neurons", "100000000"], "grow.neurons_per_experience"),
        (
            ["--benchmark", "permuted-mnist", "--data-root", str(tmp_path), "--experiences", "100000000"],
            "n_experiences",
        ),
        (["--growth", "random-svod", "--neurons", "4", "--disruption-probe", "10000000"], "grow.disruption_probe"),
        (["--growth", "none", "--hidden", "2000000", "2000000"], "hidden_sizes"),
    ):
        assert main(["run", *argv, "--out", str(tmp_path / "o"), "--check"]) == 2
        err = capsys.readouterr().err
        assert "this run would hold at least" in err and "GiB of memory" in err and "this machine has" in err
        assert err.startswith(f"clgrow: error: {named}: "), err  # the setting that makes it too large
    assert main(["run", "--growth", "swe-svod", "--out", str(tmp_path / "o"), "--check"]) == 0  # the default fits


@pytest.mark.parametrize(
    "argv",
    [
        ["--model", "cnn", "--channels", "100000", "M", "32", "M"],  # ~1 GiB of activations per sample
        ["--model", "resnet", "--nf", "4000"],
        ["--model", "SimpleMLP", "--model-arg", "hidden_size=2000000"],  # ~6 TiB of parameters
    ],
    ids=["channels", "nf", "model_args"],
)
def test_a_model_too_large_for_memory_is_refused_by_check_and_run_alike(argv, tmp_path, capsys, request):
    """The estimate comes from the model's traced shapes (built on the meta device where clgrow
    builds it), activations included, so --check refuses exactly what the run would."""
    for extra in (["--check"], []):
        assert main(["run", "--benchmark", "split-mnist-5k", *argv, "--out", str(tmp_path / "o"), *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"clgrow: error: {request.node.callspec.id}: ") and "this machine has" in err
    assert not (tmp_path / "o").exists()


def _strategy_cells():
    from clgrow.registry import strategies as STRATEGY_NAMES
    from clgrow.strategies.declared import reference_strategies

    REFERENCE_STRATEGIES = reference_strategies()

    for strategy in STRATEGY_NAMES:
        for task_labels in (False, True):
            for growth in ("none", "swe-svod"):
                if strategy in REFERENCE_STRATEGIES and growth != "none":
                    continue
                if strategy == "pnn" and not task_labels:
                    continue
                # class-incremental cells are what the other tests run: the task-labelled ones (new
                # heads appearing under per-parameter state) stay in the default suite
                marks = () if task_labels else (pytest.mark.slow,)
                yield pytest.param(strategy, task_labels, growth, marks=marks)


_SMALL = {
    "replay": {"mem_size": 30},
    "der": {"mem_size": 30},
    "er-ace": {"mem_size": 30},
    "mir": {"mem_size": 30, "subsample": 10},
    "gem": {"patterns_per_exp": 10},
}


@pytest.mark.parametrize("strategy, task_labels, growth", list(_strategy_cells()))
def test_every_strategy_runs_task_and_class_incremental_with_and_without_growth(strategy, task_labels, growth):
    """Every registered strategy, with and without task labels and growth: it runs, or it is
    refused before training with the setting named (DER with task labels); never a traceback from
    a plugin whose per-parameter state misses a new task's head (RWalk did)."""
    from clgrow.errors import ConfigError
    from clgrow.experiments.config import RunConfig
    from clgrow.experiments.runner import run

    cfg = RunConfig(
        benchmark="split-digits",
        strategy=strategy,
        growth=growth,
        task_labels=task_labels,
        n_experiences=2,
        hidden_sizes=[6, 6],
        train_epochs=1,
        strategy_kwargs=_SMALL.get(strategy, {}),
        grow=__import__("clgrow.strategies.schedule").strategies.schedule.GrowthConfig(
            neurons_per_experience=4 if growth != "none" else 32
        ),
    )
    if strategy == "der" and task_labels:
        with pytest.raises(ConfigError, match="task_labels: strategy 'der' is class-incremental"):
            cfg.validate()
        return
    s = run(cfg.resolve())
    assert s.final_accuracy is not None and len(s.accuracy_matrix) == 2
    if growth != "none" and strategy not in ("pnn",):
        assert sum(s.final_hidden_sizes) > 12


def test_an_out_path_too_long_for_the_file_system_is_bad_input(tmp_path, capsys):
    assert main(["run", *TINY_FIXED, "--growth", "none", "--out", str(tmp_path / ("a" * 300))]) == 2
    err = capsys.readouterr().err
    assert "cannot write there" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--strategy", "replay", "--set", "memsize=10"], "has no argument(s) memsize; known: mem_size"),
        (["--strategy", "naive", "--set", "foo=1"], "has no argument(s) foo; known: none"),
        (["--strategy", "ewc", "--set", "decay_factor=0.5"], "online"),
    ],
)
def test_check_refuses_hyperparameters_the_strategy_refuses(tmp_path, capsys, argv, message):
    """Names only Avalanche's class knows it refuses: --check builds the strategy once on one unit."""
    assert main(["run", *argv, "--out", str(tmp_path / "o"), "--check"]) == 2
    err = capsys.readouterr().err
    assert "strategy_kwargs: strategy" in err and message in err
    assert main(["run", "--strategy", "replay", "--set", "mem_size=10", "--out", str(tmp_path / "o"), "--check"]) == 0


def test_a_run_resolves_its_settings_once_and_builds_each_method_once(tmp_path, monkeypatch):
    """The CLI validates and builds at the edge; the runner and build_strategy parse no name again."""
    from collections import Counter

    from clgrow.params import Configurable, Params
    from clgrow.strategies import schedule as growth_config

    built, checked, parsed = Counter(), Counter(), Counter()
    init, post, names = Configurable.__init__, Params.__post_init__, growth_config.growth_methods

    def counting_init(self, *a, **k):
        built[type(self).__name__] += 1
        init(self, *a, **k)

    def counting_post(self):
        checked[type(self).__name__] += 1
        post(self)

    def counting_names(growth):
        parsed[growth] += 1
        return names(growth)

    monkeypatch.setattr(Configurable, "__init__", counting_init)
    monkeypatch.setattr(Params, "__post_init__", counting_post)
    from clgrow.experiments import config as run_config
    from clgrow.experiments import rules

    resolved = []
    check = rules.check

    def counting_check(cfg, **kw):
        resolved.append(cfg.growth)
        check(cfg, **kw)

    monkeypatch.setattr(growth_config, "growth_methods", counting_names)
    monkeypatch.setattr(run_config, "growth_methods", counting_names)
    monkeypatch.setattr(run_config, "check", counting_check)
    argv = ["run", *TINY, "--experiences", "2", "--growth", "swe-svod", "--plasticity", "redo", "--out"]
    assert main([*argv, str(tmp_path / "run")]) == 0
    assert built == Counter({"SWE": 1, "SVoD": 1, "ReDo": 1}), built
    assert parsed["swe-svod"] == 2, parsed  # the CLI (which method's flags apply) and the plan, not the runner
    assert resolved == ["swe-svod"], resolved  # one resolve: the runner takes the plan and checks nothing again
    assert checked["SWEParams"] <= 4 and checked["SVoDParams"] <= 4, checked  # declarations: microseconds each


@pytest.mark.parametrize("budget, refused", [(50_000, True), (81_920, False)])
def test_a_dense_budget_is_checked_against_the_worst_step_any_allocation_reaches(tmp_path, capsys, budget, refused):
    """K=4 over 4 steps on split-digits (64 inputs), hidden [8, 8]: the first step needs at most
    16·4·8·64 bytes, but SVoD may put every unit in layer 0, whose last step then couples 4 new
    units with 20 old ones over 64 inputs: 16·4·20·64 = 81,920 bytes."""
    argv = [
        "run",
        *TINY,
        "--growth",
        "swe-svod",
        "--swe-coupling",
        "dense",
        "--swe-max-coupling-bytes",
        str(budget),
        "--out",
        str(tmp_path / "o"),
    ]
    code = main([*argv, "--check"])
    err = capsys.readouterr().err
    if refused:
        assert code == 2 and "can need up to 0.08 MiB at the last of 4 growth step(s) (layer 0" in err
    else:
        assert code == 0 and main(argv) == 0  # the run then never meets a step over the budget


@pytest.mark.parametrize("model", [["--hidden", "8"], ["--model", "SimpleMLP", "--model-arg", "hidden_size=8"]])
def test_a_runs_compute_equals_a_count_by_hand(tmp_path, model):
    """split-digits, Naive, MLP 64-[8]-10 growing 4 units at experiences 1-4, 2 epochs: training
    costs per sample 3·F − 64·w₀ at the widths of its experience (F = Σ in·out), evaluation F per
    test sample after every experience. The same for Avalanche's SimpleMLP (counted by a hook and
    PyTorch's FLOP counter instead of clgrow's own forward)."""
    import json

    from clgrow.experiments.benchmarks import make_benchmark

    out = tmp_path / "run"
    argv = [
        "run",
        "--benchmark",
        "split-digits",
        *model,
        "--neurons",
        "4",
        "--epochs",
        "2",
        "--quiet",
        "--growth",
        "random-uniform",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    s = json.loads((out / "summary.json").read_text())
    bm = make_benchmark("split-digits", 5, 0, False, None)
    train = [len(e.dataset) for e in bm.scenario.train_stream]
    test = sum(len(e.dataset) for e in bm.scenario.test_stream)
    widths = [sizes[0] for sizes in s["hidden_sizes"]]  # the width each experience trained at
    assert widths == [8, 12, 16, 20, 24]

    def forward(w: int) -> int:
        return 64 * w + w * 10

    assert s["compute"]["train_macs"] == sum(2 * n * (3 * forward(w) - 64 * w) for n, w in zip(train, widths))
    assert s["compute"]["eval_macs"] == sum(test * forward(w) for w in widths)
    assert s["compute"]["growth_macs"] == 0  # random + uniform read no data
    # growth disruption: at growth step e, every earlier experience's probe (200 samples kept) runs
    # right before (widths of experience e-1) and right after (widths of e)
    probes = [min(200, n) for n in train]
    assert s["compute"]["probe_macs"] == sum(
        sum(probes[:e]) * (forward(widths[e - 1]) + forward(widths[e])) for e in range(1, 5)
    )
    params = [64 * w + w + w * 10 + 10 for w in widths]
    assert s["compute"]["param_samples"] == sum(2 * n * p for n, p in zip(train, params))


_USER_MODULE = """
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, input_size, num_classes, width=16):
        super().__init__()
        self.a, self.b = nn.Linear(input_size, width), nn.Linear(width, 10)
        self.skip, self.head = nn.Linear(input_size, 10), nn.Linear(10, num_classes)

    def forward(self, x):
        x = x.flatten(1)
        return self.head(F.relu(self.b(F.relu(self.a(x))) + self.skip(x)))  # b and skip: one residual stream


def tanh_net(input_size, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_size, 8), nn.Tanh(), nn.Linear(8, num_classes))
"""


def test_a_users_model_by_import_path_and_avalanches_by_name_grow_from_the_cli(tmp_path, monkeypatch, capsys):
    """``--model package.module:factory`` finds a module in the working directory, gets the
    benchmark's sizes and ``--model-arg``; its sites are listed before training and it grows."""
    (tmp_path / "usermodels.py").write_text(_USER_MODULE)
    monkeypatch.chdir(tmp_path)
    argv = ["run", *TINY_MODEL, "--growth", "swe-svod", "--model", "usermodels:Net", "--model-arg", "width=12"]
    assert main([*argv, "--out", str(tmp_path / "u")]) == 0
    summary = json.loads((tmp_path / "u" / "summary.json").read_text())
    assert summary["hidden_sizes"][0] == [12, 10] and sum(summary["final_hidden_sizes"]) > 22
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "c"), "--check"]) == 0
    listing = capsys.readouterr().err
    assert "site 0: a -> ReLU -> b" in listing and "site 1: b + skip -> residual stream -> head" in listing
    avalanche = ["run", *TINY_MODEL, "--growth", "swe-svod", "--model", "SimpleMLP", "--model-arg", "hidden_size=8"]
    assert main([*avalanche, "--out", str(tmp_path / "a")]) == 0
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["final_hidden_sizes"][0] > 8


@pytest.mark.parametrize(
    "model,message",
    [
        ("usermodels:tanh_net", r"no growth site(.|\n)*goes to Tanh"),
        ("usermodels:nope", "'usermodels' has no 'nope'"),
        ("nomodule:x", "cannot import 'nomodule'"),
        ("SimpleCNN", r"does not run on this benchmark.s inputs of shape \(64,\)"),  # flat rows, as the run feeds them
        ("Bad-Name", "must be mlp, cnn or resnet, one of Avalanche's models"),
    ],
)
def test_a_model_that_cannot_grow_or_load_is_refused_by_check_and_run_alike(
    model, message, tmp_path, monkeypatch, capsys
):
    import re

    (tmp_path / "usermodels.py").write_text(_USER_MODULE)
    monkeypatch.chdir(tmp_path)
    for extra in (["--check"], []):
        assert main(["run", *TINY_MODEL, "--growth", "swe-svod", "--model", model, "--out", "o", *extra]) == 2
        assert re.search(message, capsys.readouterr().err), model
    assert not (tmp_path / "o").exists()


def test_every_flag_and_argument_of_every_command_has_help():
    import argparse

    from clgrow.experiments import cli

    parser = cli._parser(full_run=True)
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    missing = [
        f"{name} {a.option_strings or a.dest}"
        for name, sub in commands.items()
        for a in sub._actions
        if not a.help and not isinstance(a, argparse._HelpAction)
    ]
    assert not missing, missing


def test_progress_bars_only_on_a_terminal(tmp_path):
    """Into a pipe or a log file (not a terminal) a run writes its lines, not a bar per refresh."""
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "clgrow.experiments.cli", "run", *TINY[:-1], "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-1000:]
    assert "it/s" not in res.stderr and "\r" not in res.stderr
    assert "exp 4:" in res.stdout


def test_a_benchmark_the_defaults_serve_badly_is_named_with_what_learns_it(tmp_path, capsys):
    assert main(["run", "--benchmark", "split-digits", "--check", "--out", str(tmp_path / "o")]) == 0
    assert "split-digits learns little at 3 epoch(s) per experience; --epochs 20" in capsys.readouterr().err
    assert main(["run", "--benchmark", "split-digits", "--epochs", "20", "--check", "--out", str(tmp_path / "o")]) == 0
    assert "learns little" not in capsys.readouterr().err


def test_avalanches_multi_task_model_grows_and_its_later_heads_read_the_grown_width(tmp_path):
    """MTSimpleMLP in a task-incremental stream: its hidden layer grows at every experience and
    each head Avalanche adds for a new task is built at the width grown so far (a head built at an
    older width would fail the forward pass of its task)."""
    out = tmp_path / "mt"
    argv = [
        "run",
        *TINY_MODEL,
        "--task-labels",
        "--growth",
        "swe-svod",
        "--model",
        "MTSimpleMLP",
        "--model-arg",
        "hidden_size=8",
    ]
    assert main([*argv, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    widths = [sizes[0] for sizes in summary["hidden_sizes"]]
    assert widths == [8, 12, 16, 20, 24]  # 4 units per experience from the second
    assert len(summary["accuracy_matrix"]) == 5 and all(len(row) == 5 for row in summary["accuracy_matrix"])


def test_a_method_flag_reads_its_text():
    from clgrow.experiments.cli import flag_value
    from clgrow.methods import SWEParams

    clip = flag_value(SWEParams.specs()["clip"])
    assert clip("none") is None and clip("0.5") == 0.5 and clip.__name__ == "float"
    with pytest.raises(ValueError):
        clip("inf")


def test_a_run_saves_its_grown_model_and_another_run_starts_from_it(tmp_path, capsys):
    """model.pt reloads into the model as built at its initial widths and gives the run's final
    accuracies; --init-from starts a run from it, at its widths, its growth counted on."""
    import torch

    import clgrow
    from clgrow.experiments.benchmarks import make_benchmark

    first = tmp_path / "first"
    assert main(["run", *TINY, "--out", str(first)]) == 0
    s = json.loads((first / "summary.json").read_text())
    bm = make_benchmark("split-digits", 5, seed=0)
    fresh = clgrow.mlp(bm.in_features, [8, 8], bm.num_classes)
    clgrow.load_grown(fresh, first / "model.pt").eval()
    assert [m.out_features for m in fresh if isinstance(m, torch.nn.Linear)][:-1] == s["final_hidden_sizes"]
    with torch.no_grad():
        for j, exp in enumerate(bm.scenario.test_stream):
            x, y = torch.stack([exp.dataset[i][0] for i in range(len(exp.dataset))]), exp.dataset.targets
            acc = (fresh(x).argmax(1) == torch.as_tensor(list(y))).float().mean().item()
            assert acc == pytest.approx(s["accuracy_matrix"][-1][j], abs=1e-6)

    second = tmp_path / "second"
    assert main(["run", *TINY, "--init-from", str(first / "model.pt"), "--out", str(second)]) == 0
    t = json.loads((second / "summary.json").read_text())
    assert t["hidden_sizes"][0] == s["final_hidden_sizes"] and t["config"]["init_from"] == str(first / "model.pt")
    assert sum(t["final_hidden_sizes"]) == sum(s["final_hidden_sizes"]) + 4 * 4
    assert min(e["cohort"] for e in t["growth_events"]) > max(e["cohort"] for e in s["growth_events"])


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--init-from", "nowhere.pt"], "init_from: 'nowhere.pt' is not a file"),
        (["--hidden", "8", "--init-from", "{saved}"], "init_from: {saved}: load_grown: the checkpoint has"),
        (["--init-from", "{junk}"], "init_from: {junk} could not be read as a saved model"),
        (
            ["--match-final-size", "--init-from", "{saved}"],
            "match_final_size: a baseline built at another run's widths",
        ),
    ],
)
def test_a_run_refuses_a_saved_model_it_cannot_start_from(tmp_path, capsys, extra, says):
    import clgrow

    saved, junk = tmp_path / "model.pt", tmp_path / "junk.pt"
    clgrow.save_grown(clgrow.mlp(64, [8, 8, 8], 10), saved)
    junk.write_text("not a model")
    args = [a.format(saved=saved, junk=junk) for a in extra]
    assert main(["run", *TINY, *args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert says.format(saved=saved, junk=junk) in err and "Traceback" not in err
