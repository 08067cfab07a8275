"""``clgrow run --check`` is the run: it says yes only to runs that complete, no only to runs the
run refuses too, for models clgrow did not build and the settings a researcher gives them."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clgrow.experiments.cli import main
from tests.experiments.conftest import TINY_MODEL

# Models a researcher brings, each wrong (or right) in one way the first batch shows.
_MODELS = """
import torch
import torch.nn as nn
import torch.nn.functional as F


def flat(input_size, num_classes, width=12):
    return nn.Sequential(nn.Linear(input_size, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, num_classes))


def fixed_in(num_classes):  # ignores the benchmark's size: 784 inputs whatever it feeds
    return nn.Sequential(nn.Linear(784, 8), nn.ReLU(), nn.Linear(8, num_classes))


def images(num_classes):  # needs images; the run feeds flat rows
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(num_classes))


def two_classes(input_size):  # a head of two classes on a ten-class stream
    return nn.Sequential(nn.Linear(input_size, 8), nn.ReLU(), nn.Linear(8, 2))


def half(input_size, num_classes):
    return flat(input_size, num_classes).half()


class Pair(nn.Module):
    def __init__(self, input_size, num_classes):
        super().__init__()
        self.a, self.b = nn.Linear(input_size, 8), nn.Linear(8, num_classes)

    def forward(self, x):
        h = F.relu(self.a(x))
        return self.b(h), h  # scores and features: the strategies need one tensor


class Residual(nn.Module):
    def __init__(self, input_size, num_classes):
        super().__init__()
        self.a, self.b, self.skip = nn.Linear(input_size, 8), nn.Linear(8, 6), nn.Linear(input_size, 6)
        self.head = nn.Linear(6, num_classes)

    def forward(self, x):
        return self.head(F.relu(self.b(F.relu(self.a(x))) + self.skip(x)))


def raises(input_size, num_classes):
    raise ValueError("width must be positive")


def empty(input_size, num_classes):  # a hidden layer of no units
    return nn.Sequential(nn.Linear(input_size, 0), nn.ReLU(), nn.Linear(0, num_classes))


class Heads(nn.Module):  # a head per parity of the batch's first label: the trace takes one
    def __init__(self, input_size, num_classes):
        super().__init__()
        self.a = nn.Linear(input_size, 8)
        self.heads = nn.ModuleDict({"even": nn.Linear(8, num_classes), "odd": nn.Linear(8, num_classes)})

    def forward(self, x):
        h = F.relu(self.a(x))
        return self.heads["even" if x.shape[0] % 2 == 0 else "odd"](h)


class Tied(nn.Module):
    def __init__(self, input_size, num_classes):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(input_size, 8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.c.weight = self.b.weight
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.head(F.relu(self.c(F.relu(self.b(F.relu(self.a(x)))))))
"""

MODELS = [
    "flat",
    "fixed_in",
    "images",
    "two_classes",
    "half",
    "Pair",
    "Residual",
    "raises",
    "empty",
    "Heads",
    "Tied",
    "SimpleMLP",
    "MTSimpleMLP",
]
GROWTH = [
    [],
    ["--growth", "none"],
    ["--growth", "random-uniform"],
    ["--growth", "swe-svod", "--layers", "0"],
    ["--growth", "swe-svod", "--layers", "4"],
    ["--growth", "random-svod", "--max-params", "100"],
    ["--growth", "random-uniform", "--max-hidden-size", "4"],
    ["--growth", "random-svod", "--svod-max-copy-bytes", "1000"],
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bring")
    (d / "brought.py").write_text(_MODELS)
    return d


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=st.sampled_from(MODELS), growth=st.sampled_from(GROWTH), tasks=st.booleans())
def test_check_says_yes_only_to_runs_that_complete(workdir, monkeypatch, capsys, model, growth, tasks):
    monkeypatch.chdir(workdir)
    name = model if model.endswith("SimpleMLP") else f"brought:{model}"
    argv = ["run", *TINY_MODEL, "--experiences", "2", "--model", name, *growth, *(["--task-labels"] if tasks else [])]
    checked = main([*argv, "--out", str(workdir / "c"), "--check"])
    check_err = capsys.readouterr().err
    ran = main([*argv, "--out", str(workdir / f"r-{model}-{len(growth)}-{tasks}")])
    run_err = capsys.readouterr().err
    assert checked in (0, 2) and ran in (0, 2), (checked, ran, check_err, run_err)
    assert checked == ran, f"--check said {checked}, the run {ran}:\n{check_err}\n{run_err}"
    if checked == 2:  # the same refusal, naming the same problem
        assert check_err.splitlines()[0] == run_err.splitlines()[0]
        assert "Traceback" not in check_err + run_err
