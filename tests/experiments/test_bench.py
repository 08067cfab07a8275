"""The benchmark scripts run (figures are printed, not asserted: timings belong in the scripts)."""

from __future__ import annotations

from clgrow import SWE, SVoD
from clgrow.experiments.bench import frontier, suite


def test_inactivity_section_prints_ratios():
    text = suite.section_inactivity(quick=True)
    assert "| `measure_inactivity`" in text and text.count("|") > 10


def test_frontier_names_the_default_and_the_paper_preset():
    assert frontier.VARIANTS[frontier.DEFAULT] == ("swe", {}, {})
    assert frontier.VARIANTS[frontier.PAPER] == ("swe", dict(SWE.PAPER), dict(SVoD.PAPER))
    assert len(frontier.VARIANTS) == len(set(frontier.VARIANTS))


def test_frontier_staged_prints_one_row_per_variant(capsys):
    frontier.main(
        [
            "--data",
            "digits",
            "--seeds",
            "0",
            "--hidden",
            "8",
            "8",
            "--k",
            "4",
            "--growths",
            "1",
            "--epochs-before",
            "1",
            "--epochs-between",
            "1",
            "--workers",
            "1",
            "--variants",
            "random",
            frontier.DEFAULT,
        ]
    )
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "variant" not in line]
    assert [r.split(" | ")[0] for r in rows] == ["| random", "| " + frontier.DEFAULT]
    assert all("nan" not in r for r in rows)
