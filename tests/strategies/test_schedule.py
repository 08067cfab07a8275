"""GrowthConfig: every growth setting declared, defaulted and validated in one place."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clgrow import SWE, ConfigError, GrowthError
from clgrow.strategies.schedule import GROWTH_PRESETS, GrowthConfig, parse_growth


@pytest.mark.parametrize(
    "field,value",
    [
        ("neurons_per_experience", -1),
        ("neurons_per_experience", 2.5),
        ("neurons_per_experience", True),
        ("grow_from_experience", -1),
        ("grow_every_epochs", 0),
        ("max_hidden_size", 0),
        ("layers", []),
        ("layers", [-1]),
        ("grow_head", 1),
        ("carry_optimizer_state", "yes"),
        ("extender", "nope"),
        ("distributor", 3),
        ("extender_kwargs", {"bogus": 1}),
        ("extender_kwargs", {"passes": -1.0}),
        ("distributor_kwargs", [1]),
    ],
)
def test_each_bad_setting_is_named(field, value):
    with pytest.raises(ConfigError, match=f"^grow.{field}" if "kwargs" not in field or value == [1] else field):
        GrowthConfig(**{field: value}).validate(prefix="grow.")


def test_config_errors_are_growth_errors_and_value_errors():
    assert issubclass(ConfigError, GrowthError) and issubclass(ConfigError, ValueError)


def test_presets_resolve_and_merge_keyword_tables():
    paper = parse_growth("swe-svod-paper", extender_kwargs={"partners": 8}, neurons_per_experience=5)
    assert paper.extender_kwargs == {**SWE.PAPER.changes(), "partners": 8}
    assert paper.neurons_per_experience == 5 and paper.distributor == "svod"
    assert parse_growth("none") is None and parse_growth(None) is None
    assert parse_growth("random+fixed").distributor == "fixed"
    base = GrowthConfig(neurons_per_experience=7, max_hidden_size=99, extender_kwargs={"passes": 0.1})
    cfg = parse_growth("swe-uniform", base=base)
    assert (cfg.extender, cfg.distributor, cfg.neurons_per_experience, cfg.max_hidden_size) == ("swe", "uniform", 7, 99)
    assert cfg.extender_kwargs == {"passes": 0.1}
    for name, method in GROWTH_PRESETS.items():
        assert (parse_growth(name) is None) == (method is None)


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(0, 500),
    start=st.integers(0, 9),
    every=st.none() | st.integers(1, 5),
    cap=st.none() | st.integers(1, 4096),
    layers=st.none() | st.lists(st.integers(0, 5), min_size=1, max_size=4),
    head=st.booleans(),
    carry=st.booleans(),
    preset=st.sampled_from([p for p in GROWTH_PRESETS if p != "none"]),
)
def test_plain_data_round_trip(k, start, every, cap, layers, head, carry, preset):
    cfg = parse_growth(
        preset,
        neurons_per_experience=k,
        grow_from_experience=start,
        grow_every_epochs=every,
        max_hidden_size=cap,
        layers=layers,
        grow_head=head,
        carry_optimizer_state=carry,
    )
    again = GrowthConfig.from_dict(cfg.to_dict()).validate()
    assert again == cfg


def test_unknown_fields_are_named():
    with pytest.raises(ConfigError, match="run.grow: unknown field.*neurons"):
        GrowthConfig.from_dict({"neurons": 3}, where="run.grow")


def test_every_field_is_documented_for_the_command_line():
    declared = GrowthConfig.settings()
    for f in dataclasses.fields(GrowthConfig):
        if f.name in GrowthConfig.METHOD_FIELDS:  # chosen by the growth name, not a flag of its own
            continue
        assert declared[f.name].help, f.name
        assert declared[f.name].check(declared[f.name].default_value()) is None, f.name
