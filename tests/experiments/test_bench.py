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


def _run(seed, final, new_dormant=None, worst=None, disruption=None, worst_step=None, share=None, step=None, **kw):
    return dict(
        seed=seed,
        final=final,
        learning=kw.get("learning", 0.99),
        forgetting=kw.get("forgetting", 0.10),
        new_dormant=new_dormant,
        worst_cohort=worst,
        disruption=disruption,
        disruption_worst=worst_step,
        share=share,
        step_epochs=step,
    )


def test_stream_matrix_verdicts_apply_each_goal():
    """Each goal flips when its own figure crosses its bound, and only then."""
    from clgrow.experiments.bench.streams import GOALS, verdicts

    random = [_run(s, 0.80, 0.20, 0.3, forgetting=0.10 + 0.01 * s) for s in range(3)]
    fixed = [_run(s, 0.85) for s in range(3)]
    good = dict(new_dormant=0.04, worst=0.09, disruption=0.005, worst_step=0.015, share=0.19, step=0.9)
    row = [_run(s, 0.845, **good) for s in range(3)]
    assert {g: ok for g, (ok, _) in verdicts(row, random, fixed).items()} == dict.fromkeys(GOALS, True)
    for change, goal in (
        (dict(new_dormant=0.06), "alive"),  # above 5 %
        (dict(worst=0.11), "alive"),  # a cohort above 10 % at some point
        (dict(disruption=0.011), "intact"),
        (dict(worst_step=0.021), "intact"),
        (dict(share=0.21), "affordable"),
        (dict(step=1.1), "affordable"),
    ):
        bad = [_run(s, 0.845, **{**good, **change}) for s in range(3)]
        got = {g: ok for g, (ok, _) in verdicts(bad, random, fixed).items()}
        assert got == {g: g != goal for g in GOALS}, (change, got)
    worse = [_run(s, 0.83, **good) for s in range(3)]  # 2 points under the fixed model, paired
    assert not verdicts(worse, random, fixed)["no worse"][0]
    forgets = [_run(s, 0.845, forgetting=0.13, **good) for s in range(3)]  # above random's mean + std
    assert not verdicts(forgets, random, fixed)["no worse"][0]
    # at most half of random growth's dormant fraction
    assert not verdicts(row, [_run(s, 0.8, 0.07, 0.3) for s in range(3)], fixed)["alive"][0]


def test_stream_matrix_runs_and_judges_a_small_cell(capsys, tmp_path):
    from clgrow.experiments.bench import streams

    args = ["--data", "split-digits", "--hidden", "8", "--k", "4", "--batch", "32", "--seeds", "0"]
    args += ["--strategy", "naive", "--incremental", "class", "--workers", "1", "--cache", str(tmp_path)]
    out = streams.main(args)
    text = capsys.readouterr().out
    rows = [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| ") and "variant" not in line]
    assert rows == ["| default", "| random", "| fixed-final"]
    assert set(out[("naive", False)]["default"]) == set(streams.GOALS)
    assert len(list(tmp_path.glob("*.json"))) == 3
    # a second call reads every run back from the cache: same table
    assert streams.main(args) == out


def test_cohort_trace_records_every_cohort_at_every_experience_end(capsys):
    from clgrow.experiments.bench import cohort_trace

    records = cohort_trace.main(
        ["--benchmark", "split-digits", "--hidden", "8", "8", "--k", "4", "--batch", "32", "--every", "5"]
        + ["--strategy", "naive", "--growth", "random-uniform"]
    )
    ends = [r for r in records if r["at"] == "end"]
    assert [r["experience"] for r in ends] == [0, 1, 2, 3, 4]
    # uniform growth puts 2 units in each layer at each of experiences 1..4: cohorts 1..4 appear in order
    assert [sorted(r["cohorts"]) for r in ends][-1] == sorted(f"L{la}c{c}" for la in (0, 1) for c in range(5))
    assert all(r["cohorts"][f"L0c{e}"]["units"] == (8 if e == 0 else 2) for r in ends[-1:] for e in range(5))
    for r in records:
        for v in r["cohorts"].values():
            assert 0.0 <= v["dead"] <= v["dormant"] + 1e-9 <= 1.0 + 1e-9  # dead units are dormant
            assert 0.0 <= v["fires_seen"] <= 1.0
    out = capsys.readouterr().out
    assert out.count("\n| ") >= 11  # header + 10 layer-cohort rows


def test_svod_allocation_bench_measures_every_variant_against_the_papers_draws(capsys):
    from clgrow.experiments.bench import svod_allocation

    variants = ["SVoD capped at 0.5x width (default)", "proportional (no candidate copy)"]
    out = svod_allocation.main(
        ["--hidden", "8", "8", "--k", "4", "--seeds", "0", "--draws", "2", "--variants", *variants]
    )
    assert set(out) == {svod_allocation.REFERENCE, *variants}
    assert all(0.0 <= r["distance"] <= 1.0 for r in out.values())
    assert out["proportional (no candidate copy)"]["cost"] == 0.0 < out[variants[0]]["cost"]
    assert "noise floor" in capsys.readouterr().out
