"""Settings a run would ignore, and budgets past their bounds, are refused with exit code 2 and a
message naming the setting, at ``--check`` as at the run; a setting that does apply still runs."""

from __future__ import annotations

import pytest

from clgrow.experiments.cli import main
from tests.experiments.conftest import TINY


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--neurons", "0"], "grow.neurons_per_experience: 0 adds no unit"),
        (["--regrow-pruned"], "grow.regrow_pruned: does not apply to this run: prune is 'none'"),
        (["--grow-head"], "grow.grow_head: does not apply to this run"),
        (["--no-carry-optimizer-state"], "grow.carry_optimizer_state: does not apply to this run"),
        (["--max-hidden-size", "4"], "max_hidden_size 4 leaves no room"),
        (["--lr", "1e300"], "lr: must be a finite number > 0 and <= 10"),
        (["--swe-passes", "1e9"], "passes must be a finite number >= 0 and <= 100"),
        (["--svod-vote-passes", "1e9"], "vote_passes must be a finite number > 0 and <= 100"),
        (["--svod-lr", "1e300"], "lr must be a finite number > 0 and <= 10"),
    ],
)
def test_an_ignored_or_unbounded_setting_is_refused_at_check(tmp_path, capsys, flags, message):
    code = main(["run", *TINY, *flags, "--out", str(tmp_path / "o"), "--check"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    "flags",
    [
        ["--no-carry-optimizer-state", "--no-reset-optimizer"],  # the state is carried: the choice matters
        ["--neurons", "0", "--regrow-pruned", "--prune", "drop"],  # grows back only what is pruned
    ],
)
def test_the_same_setting_where_it_applies_passes_check(tmp_path, capsys, flags):
    assert main(["run", *TINY, *flags, "--out", str(tmp_path / "o"), "--check"]) == 0, capsys.readouterr().err
