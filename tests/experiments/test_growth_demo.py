"""The plain-PyTorch growth demo runs end to end on embedded data."""

from __future__ import annotations

from clgrow.experiments.growth_demo import main


def test_growth_demo_prints_a_row_per_extender(capsys):
    main(["--data", "digits", "--k", "6", "--hidden", "8", "8", "--epochs", "1", "--seeds", "0"])
    out = capsys.readouterr().out
    for name in ["swe", "random", "net2net", "gradmax"]:
        assert f"| {name} |" in out
