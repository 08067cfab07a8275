"""The run schema: one declaration per setting makes the flags, the checks, the TOML keys, the
summary's fields and the docs' reference; settings a run ignores are refused; one resolve."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clgrow.errors import ConfigError
from clgrow.experiments.cli import _parser, main
from clgrow.experiments.config import RunConfig
from clgrow.strategies.settings import SECTIONS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_docs_flag_reference_is_the_generated_one():
    from clgrow.experiments.commands import flag_reference

    text = DOCS.read_text()
    found = re.search(r"<!-- flag-reference:begin -->\n(.*)<!-- flag-reference:end -->", text, re.S)
    assert found, "docs/cli.md lost its flag-reference markers"
    assert found.group(1) == flag_reference(), (
        "docs/cli.md is stale: paste `clgrow list --markdown` between its markers"
    )


def test_every_setting_is_declared_once_with_a_section_and_a_way_in():
    declared = RunConfig.settings()
    fields = [f.name for f in dataclasses.fields(RunConfig)]
    assert set(fields) - set(declared) == {"grow"}  # the growth settings are GrowthConfig's declaration
    parser = _parser()
    run = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "run")[1]
    dests = {a.dest for a in run._actions}
    for name, s in declared.items():
        assert s.section in SECTIONS
        if s.flag is not None:
            assert f"run.{name}" in dests, name  # its flag is made from the declaration
        else:
            assert s.via, f"{name}: no flag and no word on what sets it"
        assert s.check(s.default_value()) is None, f"{name}: its default fails its own check"
    # summary.json and a grid's [run] carry exactly these names
    assert set(RunConfig().to_dict()) == set(fields)


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"channels": [8, "M"]}, "channels: does not apply to this run: it shapes model 'cnn'"),
        ({"nf": 8, "model": "cnn", "benchmark": "split-digits"}, "nf: does not apply"),
        ({"hidden_sizes": [8], "model": "resnet", "benchmark": "split-digits"}, "hidden_sizes: does not apply"),
        ({"batch_norm": False}, "batch_norm: does not apply"),
        ({"model_args": {"width": 3}}, "model_args: does not apply"),
        ({"prune_select": "dormant"}, "prune_select: does not apply to this run: prune is 'none'"),
        ({"prune": "drop", "prune_tau": 0.1}, "prune_tau: does not apply to this run: prune_select is 'dead'"),
        ({"momentum": 0.5}, "momentum: does not apply"),
        ({"growth": "none", "grow": {"neurons_per_experience": 4}}, "grow.neurons_per_experience: does not apply"),
        ({"growth": "swe-svod", "grow": {"grow_from_experience": 5}}, "would never grow"),
    ],
)
def test_a_setting_the_run_ignores_is_refused_by_name(fields, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        RunConfig.from_dict({"benchmark": "split-digits", **fields}, methods=False)


def test_the_same_settings_where_they_apply_are_accepted():
    for fields in (
        {"model": "cnn", "channels": [8, "M"], "batch_norm": False},
        {"model": "resnet", "nf": 8},
        {"prune": "swe", "prune_select": "dormant", "prune_tau": 0.1},
        {"optimizer": "sgd", "momentum": 0.5},
        {"growth": "random-uniform", "grow": {"neurons_per_experience": 4}},
        {"growth": "none", "match_final_size": "swe-svod", "grow": {"neurons_per_experience": 4}},
    ):
        RunConfig.from_dict({"benchmark": "split-digits", **fields}, methods=False)


def test_a_grid_refuses_a_shared_setting_no_cell_uses_and_keeps_one_some_cell_uses(tmp_path):
    from clgrow.experiments.gridfile import load_grid

    g = tmp_path / "g.toml"
    head = '[grid]\nbenchmark = "split-digits"\nstrategies = ["naive"]\ngrowth = ["none", "swe-svod"]\nseeds = [0]\n'
    g.write_text(
        head + 'prune = ["none", "drop"]\n[run]\nprune_select = "dormant"\n[run.grow]\nneurons_per_experience = 4\n'
    )
    assert len(load_grid(g).cells()) == 4  # prune_select serves the drop cells, the growth setting the growing ones
    g.write_text(head + "[run]\nprune_select = 'dormant'\n")
    with pytest.raises(ConfigError, match="run.prune_select: applies to no cell of this grid"):
        load_grid(g)


def test_config_is_frozen_and_resolves_into_a_plan():
    cfg = RunConfig(benchmark="split-digits", growth="random-uniform")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3  # type: ignore[misc]
    plan = cfg.resolve()
    assert plan.config is cfg and plan.growth is not None and not isinstance(plan.growth.extender, str)
    from clgrow.experiments.runner import run

    with pytest.raises(TypeError, match="RunPlan"):
        run(cfg)  # type: ignore[arg-type]


def test_strategies_are_told_apart_by_their_traits_not_their_names():
    """A third-party strategy declaring pnn's traits gets pnn's rules: no rule names a strategy."""
    import ast

    import clgrow.experiments.rules as rules

    tree = ast.parse(Path(rules.__file__).read_text())
    named = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in ("pnn", "der", "joint")]
    assert named == []
    with pytest.raises(ConfigError, match="task_labels: strategy 'pnn' needs task labels"):
        RunConfig(benchmark="split-digits", strategy="pnn", growth="none").validate(methods=False)
    with pytest.raises(ConfigError, match="task_labels: strategy 'der' is class-incremental"):
        RunConfig(benchmark="split-digits", strategy="der", growth="none", task_labels=True).validate(methods=False)


def test_plugins_run_in_their_declared_order():
    """clgrow's plugins by their declared plugin_order, the caller's between the optimizer's reset
    and the prune, as one block."""
    from avalanche.core import SupervisedPlugin

    from clgrow import mlp
    from clgrow.strategies import build_strategy
    from clgrow.strategies.fastdata import BatchDataPlugin
    from clgrow.strategies.optimizer_state import ResetOptimizerPlugin
    from clgrow.strategies.plasticity import PlasticityPlugin
    from clgrow.strategies.plugin import GrowPlugin
    from clgrow.strategies.prune_plugin import PrunePlugin

    ours = (BatchDataPlugin, ResetOptimizerPlugin, PrunePlugin, PlasticityPlugin, GrowPlugin)
    mine, theirs = SupervisedPlugin(), SupervisedPlugin()
    model = mlp(4, [4], 2)
    s = build_strategy("naive", model, "random-uniform", plugins=[mine, theirs], plasticity="redo", prune="drop")
    order = [
        type(p).__name__ if isinstance(p, ours) else p for p in s.plugins if isinstance(p, ours) or p in (mine, theirs)
    ]
    assert order == [
        "BatchDataPlugin",
        "ResetOptimizerPlugin",
        mine,
        theirs,
        "PrunePlugin",
        "PlasticityPlugin",
        "GrowPlugin",
    ]


_DRAWN = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["mlp", "cnn", "resnet"]),
        "channels": st.sampled_from([[8, "M"], [4]]),
        "nf": st.sampled_from([4, 20]),
        "batch_norm": st.booleans(),
        "hidden_sizes": st.sampled_from([[6], [64, 64]]),
        "prune": st.sampled_from(["none", "drop", "swe"]),
        "prune_select": st.sampled_from(["dead", "dormant"]),
        "prune_tau": st.sampled_from([0.025, 0.1]),
        "optimizer": st.sampled_from(["adam", "sgd"]),
        "momentum": st.sampled_from([None, 0.5]),
        "growth": st.sampled_from(["none", "random-uniform", "swe-svod"]),
        "eval_mb_size": st.sampled_from([64, 512]),
        "reset_optimizer": st.booleans(),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=_DRAWN)
def test_a_drawn_configuration_is_refused_exactly_when_it_gives_a_setting_it_ignores(fields):
    """Over the schema's conditional settings: validation refuses iff some given value is one the
    run ignores (the refusal names it), and the CLI's --check answers as the Python check does."""
    from clgrow.experiments.rules import inapplicable

    cfg = RunConfig(benchmark="split-digits", n_experiences=2, **fields)
    ignored = inapplicable(cfg)
    try:
        cfg.validate(methods=False)
        refused = None
    except ConfigError as err:
        refused = str(err)
    if ignored:
        assert refused is not None and any(refused.startswith(f"{name}: does not apply") for name, _ in ignored), (
            fields,
            refused,
        )
    else:
        assert refused is None, (fields, refused)


def test_check_is_the_runs_own_resolve_for_out_and_the_parameter_budget(tmp_path, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert main(["run", "--benchmark", "split-digits", "--out", str(blocked / "o"), "--check"]) == 2
    assert "--out" in capsys.readouterr().err
    assert not (tmp_path / "fresh").exists()
    assert (
        main(["run", "--benchmark", "split-digits", "--growth", "none", "--out", str(tmp_path / "fresh"), "--check"])
        == 0
    )
    assert not (tmp_path / "fresh").exists()  # --check looks, it makes nothing


def test_a_parameter_budget_below_the_model_is_refused_by_check(tmp_path, capsys):
    argv = ["run", "--benchmark", "split-digits", "--hidden", "8", "--out", str(tmp_path / "o"), "--check"]
    assert main([*argv, "--max-params", "100"]) == 2
    assert "grow.max_params: 100 is below the model's" in capsys.readouterr().err
    assert main([*argv, "--max-params", "5000"]) == 0


@pytest.mark.parametrize("budget", [20_000, 45_000, 2_000_000])
def test_check_passes_an_svod_copy_budget_only_when_no_step_of_the_run_exceeds_it(tmp_path, capsys, budget):
    """SVoD's copy budget is priced at the worst step of the run: where --check says yes, the run
    completes (it used to refuse after a whole experience trained)."""
    from tests.experiments.conftest import TINY

    argv = ["run", *TINY, "--svod-max-copy-bytes", str(budget), "--out", str(tmp_path / "o")]
    checked = main([*argv, "--check"])
    err = capsys.readouterr().err
    assert checked in (0, 2)
    if checked == 2:
        assert "grow.distributor_kwargs.max_copy_bytes" in err
        assert budget < 100_000  # the worst step of this tiny run needs far less than that
    else:
        assert main(argv) == 0, capsys.readouterr().err


@pytest.mark.parametrize("task_labels, budget", [(False, 909), (False, 910), (True, 844), (True, 845)])
def test_check_and_run_agree_on_a_parameter_budget_at_the_models_size(tmp_path, capsys, task_labels, budget):
    """The budget is counted on the model the run builds (its head as the run starts it: 910
    parameters class-incrementally, 845 with one head of 2 classes per task)."""
    argv = ["run", "--benchmark", "split-digits", "--hidden", "12", "--experiences", "2", "--epochs", "1"]
    argv += ["--neurons", "4", "--max-params", str(budget), "--quiet", "--out", str(tmp_path / "o")]
    argv += ["--task-labels"] if task_labels else []
    checked, ran = main([*argv, "--check"]), main(argv)
    assert checked == ran == (0 if budget in (910, 845) else 2), capsys.readouterr().err


def test_a_grids_check_builds_every_cell_not_only_the_first(tmp_path, capsys):
    """The checks that build something (here SVoD's copy budget at the worst step) run for every
    cell of a grid: a growing cell that would refuse mid-stream is refused by --check, even when the
    grid's first cell does not grow."""
    g = tmp_path / "g.toml"
    g.write_text(
        '[grid]\nbenchmark = "split-digits"\nstrategies = ["naive"]\ngrowth = ["none", "swe-svod"]\nseeds = [0, 1]\n'
        "[run]\nhidden_sizes = [8, 8]\n[run.grow]\nneurons_per_experience = 4\n"
        "distributor_kwargs = { max_copy_bytes = 20000 }\n"
    )
    assert main(["compare", str(g), "--out", str(tmp_path / "o"), "--check"]) == 2
    assert "grow.distributor_kwargs.max_copy_bytes" in capsys.readouterr().err
