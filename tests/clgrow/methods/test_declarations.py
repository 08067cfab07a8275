"""Methods are declared once: the declaration checks arguments, makes repr, flags and presets.

Registry-parametrised: a method is covered as soon as it is declared.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clgrow import SWE, ConfigError, SVoD
from clgrow.methods import PAPER_SVOD, PAPER_SWE, SWEParams
from clgrow.methods.extender import Extender
from clgrow.params import Params, Spec, param, params_from_signature
from clgrow.registry import REGISTRIES, distributors, extenders, plasticity_methods, strategies
from clgrow.strategies.schedule import growth_methods, known_methods

_METHODS = [(kind, name) for kind in ("extender", "distributor", "plasticity") for name in REGISTRIES[kind]]


@pytest.mark.parametrize("kind,name", _METHODS)
def test_each_method_is_built_from_its_declaration(kind, name):
    registry = REGISTRIES[kind]
    declared = registry.params(name)
    cls = registry[name]
    assert cls.Params is declared, "the implementation takes the registered declaration"
    method = registry.build(name)
    assert method.params == declared()
    for arg, spec in declared.specs().items():
        assert getattr(method, arg) == spec.default  # what the method reads
        assert f"{arg}=" in repr(method)  # repr shows every argument
    assert type(method)(**declared()).params == method.params  # a declaration unpacks as keywords


def _outside(spec: Spec):
    """Values the spec must refuse."""
    bad: list[object] = ["text"] if spec.type is not str else [3]
    if spec.type in (int, float):
        bad += [float("nan"), float("inf"), True]
        for bound, delta in ((spec.ge, -1), (spec.gt, 0), (spec.le, 1), (spec.lt, 0)):
            if bound is not None:
                bad.append(spec.type(bound + delta) if spec.type is int else bound + delta * 0.5)
    if spec.type is int:
        bad.append(1.5)
    if spec.choices:
        bad.append("not-a-choice")
    if not spec.optional:
        bad.append(None)
    return bad


@pytest.mark.parametrize("kind,name", _METHODS + [("strategy", n) for n in strategies])
def test_every_argument_refuses_values_outside_its_declaration_by_name(kind, name):
    declared = REGISTRIES[kind].params(name)
    for arg, spec in declared.specs().items():
        for value in _outside(spec):
            with pytest.raises(ConfigError, match=f"{kind}.*{name!r}: {arg} must be"):
                declared(**{arg: value})
    with pytest.raises(ConfigError, match="has no argument.*nope"):
        declared.build({"nope": 1})


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_values_inside_the_bounds_are_accepted_and_kept(data):
    kind, name = data.draw(st.sampled_from(_METHODS))
    declared = REGISTRIES[kind].params(name)
    values = {}
    for arg, spec in declared.specs().items():
        if spec.type is float:
            lo = spec.ge if spec.ge is not None else (spec.gt if spec.gt is not None else -1e6)
            hi = spec.le if spec.le is not None else (spec.lt if spec.lt is not None else 1e6)
            v = data.draw(st.floats(lo, hi, exclude_min=spec.gt is not None, exclude_max=spec.lt is not None))
        elif spec.type is int:
            lo = spec.ge if spec.ge is not None else -1000
            v = data.draw(st.integers(int(lo), int(lo) + 10**6))
        elif spec.type is bool:
            v = data.draw(st.booleans())
        else:
            v = data.draw(st.sampled_from(spec.choices)) if spec.choices else "x"
        values[arg] = v
    made = declared(**values)
    assert made.to_dict() == values


def test_presets_are_instances_of_the_declaration():
    assert isinstance(SWE.PAPER, SWEParams) and SWE.PAPER is PAPER_SWE
    assert SWE(SWE.PAPER).coupling == "dense" and SWE(**SWE.PAPER).params == PAPER_SWE
    assert SVoD(SVoD.PAPER).train_passes == 1.0 and SVoD.PAPER is PAPER_SVOD
    assert growth_methods("swe-svod-paper")["extender_kwargs"] == PAPER_SWE.changes()
    assert SWEParams.build(PAPER_SWE.changes()) == PAPER_SWE
    with pytest.raises(dataclasses.FrozenInstanceError):
        PAPER_SWE.passes = 3.0  # type: ignore[misc]


def test_a_spec_describes_itself():
    clip = SWEParams.specs()["clip"]
    assert "default: 0.5" in clip.describe() and "> 0" in clip.describe()


def test_a_method_class_documents_its_declared_arguments():
    """The declaration is the one source of each argument's help: it ends the class docstring."""
    import inspect

    from clgrow.methods.plasticity import ContinualBackprop
    from clgrow.methods.svod import SVoD
    from clgrow.methods.swe import SWE

    for cls in (SWE, SVoD, ContinualBackprop):
        doc = inspect.getdoc(cls)
        assert doc.count("Parameters\n----------") == 1
        for name, spec in cls.Params.specs().items():
            assert f"{name} : {spec.type.__name__}" in doc and spec.describe() in doc


def test_a_class_without_a_declaration_is_declared_from_its_signature():
    class Toy:
        def __init__(
            self, a: int = 1, b: float | None = None, c: str = "x", d: tuple[int, int] = (1, 2), e: bool = False
        ) -> None:
            pass

    declared = params_from_signature(Toy, "extender", "toy")
    assert list(declared.specs()) == ["a", "b", "c", "e"]
    assert declared.specs()["b"].optional and declared(b=None).b is None
    with pytest.raises(ConfigError, match="extender 'toy': a must be an integer"):
        declared(a="1")


def test_a_declaration_field_needs_param_and_a_scalar_type():
    @dataclasses.dataclass(frozen=True)
    class Bad(Params):
        x: list = param(None)  # type: ignore[assignment]  # noqa: RUF009

    with pytest.raises(TypeError, match="Bad.x"):
        Bad.specs()


def test_methods_registered_at_run_time_are_known_by_name_with_their_arguments():
    @extenders.register("declared-test-extender")
    class _Mine(Extender):
        def __init__(self, scale: float = 1.0) -> None:
            super().__init__()
            self.scale = scale

    try:
        assert "declared-test-extender" in known_methods("extender")
        assert growth_methods("declared-test-extender+svod") == {
            "extender": "declared-test-extender",
            "distributor": "svod",
        }
        assert list(extenders.params("declared-test-extender").specs()) == ["scale"]
        assert extenders.build("declared-test-extender", scale=2.0).scale == 2.0
        with pytest.raises(ConfigError, match="scale must be a finite number"):
            extenders.build("declared-test-extender", scale="big")
    finally:
        extenders.unregister("declared-test-extender")
    with pytest.raises(ConfigError, match="unknown extender 'declared-test-extender'"):
        growth_methods("declared-test-extender+svod")
    with pytest.raises(KeyError):  # still a mapping
        extenders["declared-test-extender"]


def test_a_user_plasticity_method_does_not_break_importing_the_plugins():
    code = (
        "import clgrow\n"
        "from clgrow.methods.plasticity import PlasticityMethod\n"
        "@clgrow.plasticity_methods.register('mine')\n"
        "class Mine(PlasticityMethod):\n"
        "    pass\n"
        "from clgrow.strategies import PlasticityPlugin\n"
        "from clgrow.strategies.builders import build_strategy\n"
        "print(PlasticityPlugin.__name__, 'mine' in clgrow.plasticity_methods)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["PlasticityPlugin", "True"]


@pytest.mark.parametrize("name", list(strategies))
def test_each_strategy_builder_takes_exactly_its_declared_hyperparameters(name):
    import inspect

    builder = strategies[name]
    taken = [p.name for p in inspect.signature(builder).parameters.values() if p.kind is p.KEYWORD_ONLY]
    assert taken == list(strategies.params(name).specs()), "declared once, read by the builder"


def test_settings_resolve_without_importing_torch_or_avalanche():
    code = (
        "import sys\n"
        "from clgrow.strategies.schedule import ConfigError, GrowthConfig, growth_methods\n"
        "from clgrow.experiments.config import RunConfig\n"
        "from clgrow.experiments.rules import check_strategy_kwargs\n"
        "print(growth_methods('swe-svod-paper')['extender_kwargs']['coupling'])\n"
        "print(GrowthConfig.settings()['layers'].kind.allowed)\n"
        "RunConfig(growth='random+uniform').validate(methods=False)\n"
        "for bad in (lambda: growth_methods('swe+nope'),\n"
        "            lambda: RunConfig(growth='swe-svod', grow=GrowthConfig(extender_kwargs={'passes': -1}))"
        ".validate(methods=False),\n"
        "            lambda: check_strategy_kwargs('replay', {'mem_size': -1}, [])):\n"
        "    try:\n"
        "        bad()\n"
        "    except ConfigError as err:\n"
        "        print(err)\n"
        "print('torch' in sys.modules, 'avalanche' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "dense"
    assert out[1] == "a non-empty list of hidden-layer indices >= 0, or absent (all layers)"
    assert out[2].startswith("unknown distributor 'nope' in growth 'swe+nope'; known: fixed, proportional, svod")
    assert "extender 'swe': passes must be a finite number >= 0 and <= 100 or none (got -1)" in out[3]
    assert "strategy 'replay': mem_size must be an integer >= 1 (got -1)" in out[4]
    assert out[5] == "False False"


def test_registries_are_mappings_with_usage_errors(monkeypatch):
    assert extenders["swe"] is SWE and distributors["svod"] is SVoD
    assert "redo" in plasticity_methods and "nope" not in plasticity_methods
    with pytest.raises(ConfigError, match="unknown extender 'nope'.*swe"):
        extenders["nope"]
    assert extenders.get("nope") is None
