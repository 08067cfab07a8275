"""The catalog answers what a strategy accepts without importing Avalanche, and agrees with
the builders it reads."""

import inspect
import subprocess
import sys

from clgrow.strategies.builders import STRATEGIES
from clgrow.strategies.catalog import REQUIRED, strategy_hyperparameters


def test_hyperparameters_read_from_source_equal_the_builders_signatures():
    table = strategy_hyperparameters()
    assert list(table) == list(STRATEGIES)
    for name, builder in STRATEGIES.items():
        expected = {
            p.name: (REQUIRED if p.default is inspect.Parameter.empty else p.default)
            for p in inspect.signature(builder).parameters.values()
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        }
        assert table[name] == expected, name


def test_checking_strategy_hyperparameters_does_not_import_avalanche():
    code = (
        "import sys\n"
        "from clgrow.experiments.config import check_strategy_kwargs\n"
        "from clgrow import ConfigError\n"
        "check_strategy_kwargs('replay', {'mem_size': 10})\n"
        "try:\n"
        "    check_strategy_kwargs('replay', {'mem_size': -1})\n"
        "except ConfigError as err:\n"
        "    print(err)\n"
        "print('avalanche' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "strategy 'replay' needs an integer >= 0" in out
    assert out.strip().endswith("False")
