"""A user's own methods and strategy, from a package made here, need no change to clgrow.

The package is put on the path with its metadata (an installed distribution's ``dist-info``), so
its entry points are found as pip would make them; a second module is named with ``--import`` and
a grid's ``imports``. Each is then used by name: flags, ``clgrow list``, a run and a grid.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_DECLARATION = '''
from dataclasses import dataclass

from clgrow.params import Params, param
from clgrow.registry import extenders


@extenders.declare("scaled", impl="tp_methods.impl:ScaledRandom")
@dataclass(frozen=True)
class ScaledParams(Params):
    """Random incoming rows, scaled."""

    scale: float = param(0.5, "factor on the incoming rows", gt=0, le=4)
'''

_IMPLEMENTATION = """
from clgrow.methods.extender import Extender
from clgrow.surgery import default_init

from tp_methods import ScaledParams

BUILT = []


class ScaledRandom(Extender):
    Params = ScaledParams

    def _extend_layer(self, model, layer, k, ctx):
        BUILT.append(self.scale)
        inits = [default_init(k, r.fan_in) for r in model.members(layer)]  # one per producer of the site
        return model.add_units(layer, [self.scale * w for w, _ in inits], [b for _, b in inits], None, cohort=ctx.cohort)
"""

# a strategy and a plasticity method registered on their implementations, imported by name
_MODULE = """
from avalanche.training.supervised import Naive

from clgrow.methods.plasticity import PlasticityMethod
from clgrow.registry import plasticity_methods, strategies


@strategies.register("naive-twice")
def naive_twice(*, epochs_factor: int = 2, **kw):
    kw["train_epochs"] = kw["train_epochs"] * epochs_factor
    return Naive(**kw)


@plasticity_methods.register("never")
class Never(PlasticityMethod):
    def __init__(self, patience: int = 3) -> None:
        super().__init__()
        self.patience = patience
"""


@pytest.fixture(scope="module")
def user_path(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    (root / "tp_methods").mkdir()
    (root / "tp_methods" / "__init__.py").write_text(textwrap.dedent(_DECLARATION))
    (root / "tp_methods" / "impl.py").write_text(textwrap.dedent(_IMPLEMENTATION))
    info = root / "tp_methods-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tp-methods\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[clgrow.extenders]\nscaled = tp_methods\n")
    (root / "tp_strategy.py").write_text(textwrap.dedent(_MODULE))
    return root


def _clgrow(user_path: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(user_path), os.environ.get("PYTHONPATH", "")])}
    code = "import sys; from clgrow.experiments.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


def test_entry_point_methods_are_listed_and_get_flags_without_importing_torch(user_path, tmp_path):
    listed = _clgrow(user_path, "list", "-v", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "scaled" in listed.stdout.split("extenders:")[1].splitlines()[0]
    assert "scale: factor on the incoming rows; a finite number > 0 and <= 4 (default: 0.5)" in listed.stdout
    helped = _clgrow(user_path, "run", "--help", cwd=tmp_path)
    assert "--scaled-scale FLOAT" in helped.stdout
    bad = _clgrow(
        user_path, "run", "--growth", "scaled+svod", "--scaled-scale", "9", "--out", "o", "--check", cwd=tmp_path
    )
    assert (
        bad.returncode == 2 and "extender 'scaled': scale must be a finite number > 0 and <= 4 (got 9.0)" in bad.stderr
    )
    assert "Traceback" not in bad.stderr


def test_a_run_and_a_grid_use_third_party_methods_and_strategy_by_name(user_path, tmp_path):
    from tests.experiments.conftest import TINY

    done = _clgrow(
        user_path,
        "--import",
        "tp_strategy",
        "run",
        *TINY,
        "--strategy",
        "naive-twice",
        "--growth",
        "scaled+uniform",
        "--scaled-scale",
        "0.25",
        "--plasticity",
        "never",
        "--never-patience",
        "5",
        "--experiences",
        "2",
        "--out",
        "one",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "one" / "summary.json").read_text())
    cfg = summary["config"]
    assert cfg["imports"] == ["tp_strategy"] and cfg["strategy"] == "naive-twice"
    assert cfg["grow"]["extender_kwargs"] == {"scale": 0.25} and cfg["plasticity_kwargs"] == {"patience": 5}
    assert summary["final_hidden_sizes"] != [8, 8]  # the user's extender grew the model
    assert [len(losses) for losses in summary["train_loss"]] == [2, 2]  # the user's strategy: twice the epochs

    (tmp_path / "grid.toml").write_text(
        textwrap.dedent("""
        [grid]
        benchmark = "split-digits"
        n_experiences = 2
        imports = ["tp_strategy"]
        strategies = ["naive-twice"]
        growth = ["scaled+uniform", "random+uniform"]
        seeds = [0]
        [run]
        hidden_sizes = [8]
        train_epochs = 1
        train_mb_size = 64
        [run.grow]
        neurons_per_experience = 4
        extender_kwargs = { scale = 2.0 }
        """)
    )
    grid = _clgrow(user_path, "compare", "grid.toml", "--out", "g", "--workers", "1", "--quiet", cwd=tmp_path)
    assert grid.returncode == 2 and "extender 'random' has no argument(s) scale" in grid.stderr  # per-method kwargs
    text = (
        (tmp_path / "grid.toml")
        .read_text()
        .replace('growth = ["scaled+uniform", "random+uniform"]', 'growth = ["scaled+uniform", "none"]')
    )
    (tmp_path / "grid.toml").write_text(text)
    grid = _clgrow(user_path, "compare", "grid.toml", "--out", "g", "--workers", "1", "--quiet", cwd=tmp_path)
    assert grid.returncode == 0, grid.stderr
    assert "scaled+uniform" in grid.stdout and "naive-twice" in grid.stdout
