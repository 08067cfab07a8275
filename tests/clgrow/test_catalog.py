"""The torch-free catalog of methods agrees with the live registries it reads, and the settings
module answers without torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from clgrow import distributors, extenders, resetters
from clgrow.catalog import MethodParameter, method_catalog
from clgrow.config import ConfigError, growth_methods, known_methods, method_parameters
from clgrow.extender import Extender

_LIVE = {"extender": extenders, "distributor": distributors, "plasticity": resetters}


def test_catalog_read_from_source_equals_the_registries_and_their_signatures():
    catalog = method_catalog()
    assert set(catalog) == set(_LIVE)
    for kind, registry in _LIVE.items():
        assert list(catalog[kind]) == sorted(registry), kind
        for name, cls in registry.items():
            assert catalog[kind][name] == method_parameters(cls), (kind, name)


def test_defaults_written_as_arithmetic_are_read_as_numbers():
    swe = method_catalog()["extender"]["swe"]
    assert swe["max_coupling_bytes"] == MethodParameter("max_coupling_bytes", int, 2 * 1024**3, False)
    assert swe["coupling_lr"].optional and swe["coupling_lr"].type is float


@pytest.mark.parametrize("text,expected", [("none", None), ("0.5", 0.5)])
def test_optional_parameters_parse_none(text, expected):
    assert method_catalog()["extender"]["swe"]["clip"].parse(text) == expected


def test_methods_registered_at_run_time_are_known_by_name():
    @extenders.register("catalog-test-extender")
    class _Mine(Extender):
        """Registered for this test only, never built."""

    try:
        assert "catalog-test-extender" in known_methods("extender")
        assert growth_methods("catalog-test-extender+svod") == {"extender": "catalog-test-extender",
                                                                "distributor": "svod"}
    finally:
        del extenders["catalog-test-extender"]
    with pytest.raises(ConfigError, match="unknown extender 'catalog-test-extender'"):
        growth_methods("catalog-test-extender+svod")


def test_growth_names_resolve_without_importing_torch():
    code = ("import sys\n"
            "from clgrow.config import ConfigError, GrowthConfig, growth_methods\n"
            "from clgrow.experiments.config import RunConfig\n"
            "print(growth_methods('swe-svod-paper')['extender_kwargs']['coupling'])\n"
            "print(GrowthConfig.setting_types()['layers'])\n"
            "RunConfig(growth='random+uniform').validate(methods=False)\n"
            "try:\n"
            "    growth_methods('swe+nope')\n"
            "except ConfigError as err:\n"
            "    print(err)\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "dense"
    assert out[1] == "list[int] | None"
    assert out[2].startswith("unknown distributor 'nope' in growth 'swe+nope'; known: fixed, proportional, svod")
    assert out[3] == "False"
