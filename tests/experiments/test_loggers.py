"""Every metric clgrow writes to metrics.csv reaches TensorBoard and W&B under the same name."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from clgrow.experiments.cli import main
from tests.experiments.conftest import TINY

_RUN = ["run", *TINY, "--experiences", "2", "--growth", "swe-svod", "--plasticity", "redo"]


def _metric_names(out: Path) -> set[str]:
    with open(out / "metrics.csv") as f:
        return {row["metric"] for row in csv.DictReader(f)}


def test_tensorboard_event_files_hold_every_metric(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert main([*_RUN, "--logger", "tensorboard", "--out", str(out)]) == 0
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    names = _metric_names(out)
    assert {
        "NeuronDormant/eval_phase/test_stream/layer0",
        "GrowthAllocation/train_phase/train_stream/layer1",
        "UnitsReset/train_phase/train_stream",
    } <= names
    assert names <= tags, sorted(names - tags)
    steps = [e.value for e in events.Scalars("HiddenUnits/train_phase/train_stream")]
    assert steps == sorted(steps) and len(steps) == 2  # one value per training experience, widths grow


def test_wandb_logs_offline_without_network_and_gets_every_metric(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    from clgrow.experiments import loggers

    monkeypatch.setattr(loggers, "wandb_reachable", lambda timeout=2.0: False)  # as on a machine without network
    logged: set[str] = set()
    run_class = wandb.sdk.wandb_run.Run
    real_log = run_class.log

    def log(self, data, *args, **kwargs):  # what reaches the W&B run (its record format is not a contract)
        logged.update(data)
        return real_log(self, data, *args, **kwargs)

    monkeypatch.setattr(run_class, "log", log)
    out = tmp_path / "grid" / "cells" / "naive__swe-svod__seed0"
    assert main([*_RUN, "--logger", "wandb", "--out", str(out)]) == 0
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "an offline run directory, for `wandb sync` later"
    assert list(runs[0].glob("run-*.wandb"))
    missing = sorted(_metric_names(out) - logged)
    assert not missing, missing


def test_unknown_loggers_are_refused_on_the_command_line_and_in_grids(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", *TINY, "--logger", "nope", "--out", str(tmp_path / "o"), "--check"])
    assert exit_.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err
    grid = tmp_path / "g.toml"
    grid.write_text('[grid]\nstrategies = ["naive"]\ngrowth = ["none"]\nseeds = [0]\nloggers = ["csv", "nope"]\n')
    assert main(["compare", str(grid), "--out", str(tmp_path / "g"), "--check"]) == 2
    assert "loggers: unknown logger 'nope'; known: csv, tensorboard, wandb" in capsys.readouterr().err


def test_a_missing_logger_package_is_named_before_training(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    assert main(["run", *TINY, "--logger", "wandb", "--out", str(tmp_path / "o"), "--check"]) == 2
    assert "the wandb logger needs the wandb package" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "o")


@pytest.mark.parametrize(
    "mode, message",
    [("bogus", "WANDB_MODE='bogus' is not one of"), ("online", "no W&B API key is configured")],
)
def test_a_wandb_logger_that_could_not_start_is_refused_by_check_and_run_alike(
    tmp_path, capsys, monkeypatch, mode, message
):
    """It used to pass --check and end the run with W&B's traceback before training."""
    from clgrow.experiments.cli import main

    monkeypatch.setenv("WANDB_MODE", mode)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc with a key
    argv = ["run", "--benchmark", "split-digits", "--logger", "wandb", "--out", str(tmp_path / "o")]
    for extra in (["--check"], []):
        assert main([*argv, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert not (tmp_path / "o" / "summary.json").exists()
