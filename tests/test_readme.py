"""The README's examples, and the docs' examples that continue them, run as printed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
AVALANCHE_DOC = ROOT / "docs" / "avalanche.md"


def _blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    return res


def _example() -> str:
    return next(b for b in _blocks(README) if "GrowPlugin(" in b and "Replay(" in b)


def test_readme_avalanche_example_prints_what_it_states(tmp_path):
    """The README states the number its example prints (seeded, CPU); the example must print it."""
    example = _example()
    stated = re.search(r"# prints: (.*?)\s{2,}", example)
    assert stated, "the README example states what it prints"
    res = _run(example, tmp_path)
    assert res.stdout.strip().splitlines()[-1] == stated.group(1).strip()
    assert (tmp_path / "runs" / "example" / "metrics.csv").is_file()


def test_docs_resets_example_runs_on_the_readme_set_up(tmp_path):
    setup = _example().split("for experience in bm.scenario.train_stream:")[0]
    resets = next(b for b in _blocks(AVALANCHE_DOC) if "plasticity=" in b)
    then = (
        "\nstrategy.train_epochs = 1  # the example's behaviour, not its accuracy, is checked here\n"
        "for experience in bm.scenario.train_stream[:2]:\n    strategy.train(experience)\n"
        "print('reset', sum(next(p for p in strategy.plugins if hasattr(p, 'counts')).counts.get(1, {}).values()))\n"
    )
    res = _run(setup + resets + then, tmp_path)
    after = res.stdout.strip().splitlines()[-1]
    assert after.startswith("reset ") and int(after.split()[1]) > 0


def test_docs_pruning_example_runs_on_the_readme_set_up(tmp_path):
    setup = _example().split("for experience in bm.scenario.train_stream:")[0]
    pruning = next(b for b in _blocks(AVALANCHE_DOC) if "prune=" in b)
    then = (
        "\nstrategy.train_epochs = 1  # the example's behaviour, not its accuracy, is checked here\n"
        "for experience in bm.scenario.train_stream[:3]:\n    strategy.train(experience)\n"
        "from clgrow.strategies.prune_plugin import find_prune_plugin\n"
        "print('pruned', len(find_prune_plugin(strategy).events), sum(p.numel() for p in model.parameters()))\n"
    )
    res = _run(setup + pruning + then, tmp_path)
    _, events, params = res.stdout.strip().splitlines()[-1].split()
    assert int(events) >= 1 and int(params) <= 100_000


def test_readme_is_a_five_minute_front_page_and_no_page_cites_internal_issues():
    lines = README.read_text().splitlines()
    assert len(lines) <= 150, f"README has {len(lines)} lines"
    pages = [README, ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
    cited = [
        f"{p.name}: {m.group(0)}" for p in pages for m in re.finditer(r"(?i)\bissues? \d+|issue-\d+", p.read_text())
    ]
    assert not cited, f"internal issue numbers mean nothing to a reader: {cited}"


def test_docs_own_model_example_runs_as_printed(tmp_path):
    example = next(b for p in (README, ROOT / "docs" / "models.md") for b in _blocks(p) if "find_sites(net" in b)
    res = _run(example, tmp_path)
    assert "12 growth site(s)" in res.stdout and "site 0: conv1 -> bn1 + layer1.0.conv2" in res.stdout
    allocation = eval(res.stdout.strip().splitlines()[-1])
    assert sum(allocation.values()) == 64 and len(allocation) == 12


def test_docs_own_method_walkthrough_runs_as_written(tmp_path):
    """docs/growth.md's method file, saved where it says, runs with the command it gives."""
    import shlex

    text = (ROOT / "docs" / "growth.md").read_text()
    source = next(b for b in _blocks(ROOT / "docs" / "growth.md") if '@extenders.register("scaled")' in b)
    command = next(line for line in re.findall(r"```bash\n(.*?)```", text, flags=re.S) if "--import scaled" in line)
    (tmp_path / "scaled.py").write_text(source)
    argv = shlex.split(command.strip())
    assert argv[0] == "clgrow"
    res = subprocess.run(
        [sys.executable, "-m", "clgrow.experiments.cli", *argv[1:], "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    import json

    summary = json.loads((tmp_path / "runs" / "scaled" / "summary.json").read_text())
    assert summary["growth"] == "scaled+svod" and "scale=0.25" in json.dumps(summary)
    by_path = subprocess.run(
        [sys.executable, "-m", "clgrow.experiments.cli", "--import", str(tmp_path / "scaled.py"), "list"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert by_path.returncode == 0 and "scaled" in by_path.stdout, by_path.stderr[-1000:]
