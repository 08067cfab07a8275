"""The README's Avalanche example runs as printed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_avalanche_example_runs(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(b for b in blocks if "GrowPlugin(" in b and "Naive(" in b)
    resets = next(b for b in blocks if "plasticity=" in b)  # continues the example's model and evaluator
    then = (
        "\nfor experience in bm.scenario.train_stream[:2]:\n    strategy.train(experience)\n"
        "print('reset', sum(next(p for p in strategy.plugins if hasattr(p, 'counts')).counts.get(1, {}).values()), model.hidden_sizes)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", example + resets + then], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "runs" / "example" / "metrics.csv").is_file()
    sizes, after = res.stdout.strip().splitlines()[-2:]
    assert sizes.startswith("[") and "]" in sizes
    assert after.startswith("reset ") and int(after.split()[1]) > 0


def test_readme_pruning_example_runs(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(b for b in blocks if "GrowPlugin(" in b and "Naive(" in b)
    pruning = next(b for b in blocks if "prune=" in b)  # continues the example's benchmark and evaluator
    then = ("\nfrom clgrow.strategies import build_strategy\n" if "import build_strategy" not in pruning else "\n") + (
        "for experience in bm.scenario.train_stream[:3]:\n    strategy.train(experience)\n"
        "from clgrow.strategies.prune_plugin import find_prune_plugin\n"
        "print('pruned', len(find_prune_plugin(strategy).events), sum(p.numel() for p in model.parameters()))\n"
    )
    src = example.split("for experience in bm.scenario.train_stream:")[0]  # its set-up, not its run
    res = subprocess.run(
        [sys.executable, "-c", src + "from clgrow.strategies import build_strategy\n" + pruning + then],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    _, events, params = res.stdout.strip().splitlines()[-1].split()
    assert int(events) >= 1 and int(params) <= 100_000


def test_readme_own_model_example_runs_as_printed(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(b for b in blocks if "find_sites(net" in b)
    res = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "8 growth site(s)" in res.stdout and "conv1: its ReLU output feeds an addition" in res.stdout
    allocation = eval(res.stdout.strip().splitlines()[-1])
    assert sum(allocation.values()) == 64 and len(allocation) == 8
