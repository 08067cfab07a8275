"""Convolutional models through the command line: embedded images end to end, the
fixed-final baseline rebuilt at a grown CNN's widths, task heads, and bad input (exit 2)."""

from __future__ import annotations

import json

import pytest

from clgrow.experiments.cli import main

SMALL_CNN = ["--benchmark", "split-digits", "--model", "cnn", "--channels", "4", "M", "6", "--hidden", "8"]
FAST = ["--neurons", "6", "--epochs", "1", "--quiet", "--svod-train-passes", "0.2", "--svod-vote-passes", "0.2"]


def test_a_cnn_grows_its_convolutions_and_linear_layers_end_to_end(tmp_path):
    out = tmp_path / "cnn"
    argv = ["run", *SMALL_CNN, *FAST, "--strategy", "replay", "--set", "mem_size=40", "--match-final-size"]
    assert main([*argv, "--out", str(out)]) == 0
    s = json.loads((out / "reference" / "summary.json").read_text())
    assert s["config"]["model"] == "cnn" and s["config"]["channels"] == [4, "M", 6]
    assert s["hidden_sizes"][0] == [4, 6, 8]  # two convolutions, then the linear layer
    assert sum(s["final_hidden_sizes"]) == 18 + 6 * 4  # grown at each of the 4 later experiences
    assert len(s["growth_events"]) == 4
    assert s["new_dormant_fraction"][0] is None and s["new_dormant_fraction"][-1] is not None
    assert (out / "reference" / "figures").is_dir()
    fixed = json.loads((out / "summary.json").read_text())  # the fixed CNN rebuilt at the grown widths
    assert fixed["hidden_sizes"][0] == s["final_hidden_sizes"] and fixed["growth"] == "fixed-final"


@pytest.mark.parametrize(
    "model",
    [
        # 28x28: a ResNet-18's last stage is still 4x4 (8x8 digits end at 1x1, which batch norm
        # cannot normalise in a batch of one sample)
        ["--benchmark", "split-mnist-5k", "--model", "resnet", "--nf", "2", "--batch-size", "128"],
        SMALL_CNN,
    ],
)
def test_conv_models_take_task_heads_and_grow_in_a_task_incremental_stream(tmp_path, model):
    out = tmp_path / "task"
    argv = ["run", *model, *FAST, "--task-labels", "--growth", "swe-svod"]
    assert main([*argv, "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert sum(s["final_hidden_sizes"]) == sum(s["hidden_sizes"][0]) + 24
    assert len(s["growth_events"]) == 4 and len(s["accuracy_matrix"]) == 5
    assert all(0.0 <= a <= 1.0 for row in s["accuracy_matrix"] for a in row)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--benchmark", "split-mnist1d", "--model", "cnn"], "model 'cnn' reads images; 'split-mnist1d' has none"),
        (["--model", "cnn", "--channels", "M", "8"], "channels: must be convolution widths"),
        (["--model", "cnn", "--channels", "8", "M", "M"], "channels: must be convolution widths"),
        (["--model", "cnn", "--channels", "8", "x"], "expected a channel width or M"),
        (
            ["--model", "cnn", "--benchmark", "split-digits", "--channels", "4", "M", "4", "M", "4", "M", "4", "M"],
            "shrink",
        ),
        (
            ["--model", "resnet", "--strategy", "pnn", "--task-labels", "--growth", "none"],
            "'pnn' builds its own MLP columns",
        ),
        (["--model", "resnet", "--nf", "0"], "nf: must be an integer >= 1"),
        (["--model", "cnn", "--layers", "5"], "model 'cnn' (layer widths [16, 32, 64, 64]) has layers 0..3"),
    ],
)
def test_bad_model_settings_exit_2_naming_the_field(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(["run", *argv, "--out", str(tmp_path / "o")]))
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
