"""Property: whatever arguments or grid a user writes, validation answers with exit 0 or 2 and a
message, never a traceback (``--check`` validates everything and trains nothing)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clgrow.experiments.cli import main

_VALUES = st.one_of(
    st.integers(-(2**40), 2**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            "",
            "abc",
            "none",
            "true",
            "nan",
            "-inf",
            "1e400",
            "swe+svod",
            "0",
            "-1",
            "cuda:9",
            "cpu",
            "replay",
            "adamw",
            "split-digits",
            "7,8",
            "[1]",
        ]
    ),
    st.text(max_size=6),
)
_FLAGS = [
    "--benchmark",
    "--strategy",
    "--growth",
    "--seed",
    "--experiences",
    "--class-order-seed",
    "--hidden",
    "--epochs",
    "--batch-size",
    "--lr",
    "--optimizer",
    "--momentum",
    "--weight-decay",
    "--device",
    "--tau",
    "--set",
    "--neurons",
    "--grow-from",
    "--max-hidden-size",
    "--layers",
    "--swe-passes",
    "--svod-vote-passes",
    "--swe-coupling",
    "--grow-every-epochs",
    "--swe-old-rows",
    "--swe-consumers",
    "--swe-new-norm",
    "--swe-max-coupling-bytes",
    "--svod-alpha",
    "--svod-lr",
    "--svod-init-range",
    "--svod-candidates",
    "--gradmax-incoming-norm",
    "--fixed-layer",
    "--disruption-probe",
    "--data-root",
    "--eval-batch-size",
    "--prune",
    "--prune-select",
    "--prune-tau",
    "--channels",
    "--nf",
    "--model",
    "--threads",
    "--max-params",
    "--svod-max-copy-bytes",
    "--plasticity",
    "--redo-tau",
]
_SET_KEYS = [
    "mem_size",
    "ewc_lambda",
    "si_lambda",
    "alpha",
    "temperature",
    "lr",
    "seed",
    "mode",
    "patterns_per_exp",
    "bogus",
    "neurons_per_experience",
]


def _answer(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own exit
        code = exc.code
    out = capsys.readouterr()
    assert code in (0, 2), (argv, code, out.err)
    assert "Traceback" not in out.err
    if code == 2:
        assert "error" in out.err
    return code


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pairs=st.lists(st.tuples(st.sampled_from(_FLAGS), _VALUES), max_size=4),
    sets=st.lists(st.tuples(st.sampled_from(_SET_KEYS), _VALUES), max_size=2),
)
def test_run_arguments_are_answered_without_a_traceback(pairs, sets, capsys, tmp_path_factory):
    argv = ["run", "--check", "--out", str(tmp_path_factory.mktemp("o"))]
    for flag, value in pairs:
        argv += [flag, value] if flag != "--set" else [flag, f"mem_size={value}"]
    for key, value in sets:
        argv += ["--set", f"{key}={value}"]
    _answer(argv, capsys)


_TOML_VALUES = st.sampled_from(
    [
        "5",
        "-1",
        "true",
        '"x"',
        "[]",
        "[0, 0]",
        '["naive"]',
        '["none", "none"]',
        '["swe-svod"]',
        "1e400",
        "nan",
        "4294967296",
        "{ a = 1 }",
        '"split-digits"',
        "[64]",
        '[["a"]]',
        "0.5",
    ]
)
_GRID_KEYS = ["strategies", "growth", "seeds", "benchmark", "n_experiences", "match_growth", "task_labels", "bogus"]
_RUN_KEYS = [
    "lr",
    "hidden_sizes",
    "train_epochs",
    "seed",
    "optimizer",
    "momentum",
    "device",
    "tau",
    "growth",
    "threads",
    "weight_decay",
    "prune_select",
    "prune_tau",
    "channels",
    "nf",
    "eval_mb_size",
    "batch_norm",
    "model",
]


@pytest.mark.filterwarnings("ignore")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    grid=st.dictionaries(st.sampled_from(_GRID_KEYS), _TOML_VALUES, max_size=5),
    run=st.dictionaries(st.sampled_from(_RUN_KEYS), _TOML_VALUES, max_size=3),
    strategy=st.dictionaries(
        st.sampled_from(["replay", "ewc", "nope"]),
        st.dictionaries(st.sampled_from(_SET_KEYS), _TOML_VALUES, max_size=2),
        max_size=1,
    ),
    top=st.sampled_from(["", "grid = 5\n", "strategy = 3\n", "[extra]\n", "[grid\n"]),
)
def test_grid_files_are_answered_without_a_traceback(grid, run, strategy, top, capsys, tmp_path_factory):
    d = tmp_path_factory.mktemp("g")
    text = top
    if "grid =" not in top:
        text += "[grid]\n" + "".join(f"{k} = {v}\n" for k, v in grid.items())
    text += "[run]\n" + "".join(f"{k} = {v}\n" for k, v in run.items())
    for name, table in strategy.items():
        text += f"[strategy.{name}]\n" + "".join(f"{k} = {v}\n" for k, v in table.items())
    (d / "g.toml").write_text(text)
    _answer(["compare", str(d / "g.toml"), "--check", "--out", str(d / "out")], capsys)


_METHOD_ARGS = st.lists(
    st.sampled_from(
        [
            ["--growth", "swe-svod"],
            ["--growth", "random+fixed"],
            ["--growth", "gradmax-svod"],
            ["--growth", "swe+uniform"],
            ["--swe-old-rows", "keep"],
            ["--swe-old-rows", "restore"],
            ["--swe-consumers", "scaffold"],
            ["--swe-consumers", "new"],
            ["--swe-new-norm", "0.5"],
            ["--swe-new-norm", "-1"],
            ["--swe-coupling", "dense"],
            ["--swe-max-coupling-bytes", "1000"],
            ["--swe-max-coupling-bytes", "0"],
            ["--svod-alpha", "2"],
            ["--svod-alpha", "0.5"],
            ["--svod-candidates", "0"],
            ["--gradmax-incoming-norm", "-1"],
            ["--fixed-layer", "1"],
            ["--fixed-layer", "3"],
            ["--layers", "0"],
            ["--layers", "4"],
            ["--disruption-probe", "0"],
            ["--disruption-probe", "-2"],
            ["--tau", "inf"],
            ["--neurons", "3"],
            ["--eval-batch-size", "64"],
            ["--max-params", "100"],
            ["--max-params", "100000"],
            ["--svod-max-copy-bytes", "20000"],
            ["--svod-max-copy-bytes", "60000"],
            ["--prune", "drop"],
            ["--prune-select", "dormant"],
            ["--prune-tau", "0.1"],
            ["--optimizer", "sgd"],
            ["--momentum", "0.5"],
            ["--channels", "8", "M"],
            ["--nf", "4"],
            ["--no-batch-norm"],
            ["--growth", "none"],
            ["--grow-from", "9"],
        ]
    ),
    max_size=3,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=_METHOD_ARGS)
def test_check_says_yes_exactly_when_the_run_goes_through(extra, capsys, tmp_path_factory):
    """--check exits 0 only for a configuration the run then completes (it used to accept method
    arguments, layers and budgets the run refused after experience 0), and 2 otherwise."""
    out = tmp_path_factory.mktemp("o")
    argv = [
        "run",
        "--benchmark",
        "split-digits",
        "--experiences",
        "2",
        "--epochs",
        "1",
        "--hidden",
        "6",
        "6",
        "--quiet",
        "--out",
        str(out / "r"),
    ] + [a for pair in extra for a in pair]
    checked = _answer(argv + ["--check"], capsys)
    if checked == 0:
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        err = capsys.readouterr().err
        assert code == 0, (argv, err)
        assert (out / "r" / "summary.json").is_file()
