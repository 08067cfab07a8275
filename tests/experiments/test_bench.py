"""The benchmark scripts run (figures are printed, not asserted: timings belong in the scripts)."""

from __future__ import annotations

import pytest

from experiments.bench import budget, suite


def test_inactivity_section_prints_ratios():
    text = suite.section_inactivity(quick=True)
    assert "| `measure_inactivity`" in text and text.count("|") > 10


def test_budget_labels():
    assert budget.parse_budget("paper")[1] == {"passes": 1.0}
    assert budget.parse_budget("0.1,0.05,0.05")[2] == {"train_passes": 0.1, "vote_passes": 0.05}
    assert budget.parse_budget("default")[0].startswith("default (0.1, 0.05, 0.05")
    with pytest.raises(SystemExit):
        budget.parse_budget("fast")
