"""The shipped paper-cifar100 grid runs on small generated files in CIFAR's format:
nothing downloads, and the cells grow the authors' net in stages on its schedule."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import tomllib

from clgrow.experiments.cli import main

GRID = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "paper-cifar100.toml"


def fake_cifar100(root: Path, n_train: int = 200, n_test: int = 100, seed: int = 0) -> Path:
    """``root/cifar-100-python/{train,test,meta}`` holding random images of all 100 classes."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n in (("train", n_train), ("test", n_test)):
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"fine_labels": [i % 100 for i in range(n)],
            b"coarse_labels": [i % 20 for i in range(n)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [b"c%d" % i for i in range(100)]}))
    return root


def test_the_paper_grid_declares_the_authors_setting():
    grid = tomllib.loads(GRID.read_text())
    run = grid["run"]
    assert run["channels"] == [32, 32, "M", 64, 64, "M"] and run["batch_norm"] is True
    assert (run["lr"], run["weight_decay"], run["train_mb_size"]) == (0.001, 0.0001, 100)
    assert run["grow"]["neurons_per_experience"] == [36, 47, 60, 80, 102, 134, 174]
    assert run["train_epochs"] // run["grow"]["grow_every_epochs"] == 8  # eight stages


@pytest.mark.slow
def test_the_paper_grid_runs_its_cells_on_generated_cifar_files(tmp_path):
    """The grid, cut to one seed, one epoch per stage (8 epochs) and small steps, on 200 generated images:
    every growth step takes its count from the schedule, and fixed-final matches swe-svod's widths."""
    root = fake_cifar100(tmp_path / "data")
    text = GRID.read_text().replace("seeds = [0, 1, 2]", "seeds = [0]")
    text = text.replace('"none", "fixed-final", "random-svod", "gradmax-svod", "swe-svod"', '"fixed-final", "swe-svod"')
    text = text.replace("train_epochs = 40", "train_epochs = 8").replace(
        "grow_every_epochs = 5", "grow_every_epochs = 1"
    )
    # smaller steps (the shipped ones take minutes on two CPU cores); still one count per step
    text = text.replace("[36, 47, 60, 80, 102, 134, 174]", "[3, 4, 5, 6, 7, 8, 9]")
    text += "\n[run.grow.distributor_kwargs]\ntrain_passes = 0.1\nvote_passes = 0.1\n"
    cfg = tmp_path / "paper.toml"
    cfg.write_text(text)
    out = tmp_path / "out"
    assert main(["compare", str(cfg), "--data-root", str(root), "--out", str(out), "--quiet"]) == 0
    cells = {p.parent.name: json.loads(p.read_text()) for p in out.rglob("summary.json")}
    grown = next(s for name, s in cells.items() if "swe-svod" in name)
    added = [sum(e["allocation"].values()) for e in grown["growth_events"]]
    assert added == [3, 4, 5, 6, 7, 8, 9]
    fixed = next(s for name, s in cells.items() if "fixed-final" in name)
    assert fixed["final_hidden_sizes"] == grown["final_hidden_sizes"]
    assert sum(grown["final_hidden_sizes"]) == 32 + 32 + 64 + 64 + 200 + sum(added)


def test_the_paper_grid_checks_on_generated_files(tmp_path, capsys):
    root = fake_cifar100(tmp_path / "data", n_train=10, n_test=10)
    assert main(["compare", str(GRID), "--data-root", str(root), "--out", str(tmp_path / "o"), "--check"]) == 0
    assert "swe-svod" in capsys.readouterr().out
