"""Every module that reads Avalanche's private attributes names the release it was written against.

These are the only such modules; when Avalanche changes, this test fails first and names the
module to re-read (its docstring says which attributes).
"""

from __future__ import annotations

import importlib

import avalanche
import pytest

PRIVATE_READERS = ["fastdata", "evaluation", "param_state", "regularisers", "plugin"]


@pytest.mark.parametrize("module", PRIVATE_READERS)
def test_private_attribute_readers_are_pinned_to_the_installed_avalanche(module):
    mod = importlib.import_module(f"clgrow.strategies.{module}")
    assert mod.AVALANCHE_VERSION == avalanche.__version__, (
        f"{mod.__name__} was written against Avalanche {mod.AVALANCHE_VERSION}, {avalanche.__version__} is "
        f"installed: re-read the private attributes it uses ({mod.__file__}) and update AVALANCHE_VERSION"
    )
