"""Avalanche checkpoints restore a grown model, its optimizer and the plugin's state."""

from __future__ import annotations

from pathlib import Path

import torch
from avalanche.checkpointing import maybe_load_checkpoint, save_checkpoint
from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics
from avalanche.training.determinism.rng_manager import RNGManager
from avalanche.training.plugins import EvaluationPlugin

from clgrow import mlp
from clgrow.strategies import GrowPlugin, ResultsWriter, build_strategy, growth_metrics, inactivity_metrics
from tests.helpers import sites
from tests.strategies.conftest import all_params_optimized, fast_plugin


def _run(bm, path: Path, stop_after: int | None = None, **build) -> dict | None:
    """A replay run with growth, checkpointed after every experience (``build``: more build_strategy
    arguments); ``None`` when stopped after experience ``stop_after``."""
    RNGManager.set_random_seeds(0)
    model = mlp(bm.in_features, [8, 8], bm.num_classes)
    writer = ResultsWriter()
    evaluator = EvaluationPlugin(
        accuracy_metrics(experience=True, stream=True),
        forgetting_metrics(experience=True, stream=True),
        *inactivity_metrics(),
        *growth_metrics(),
        loggers=[writer],
    )
    strategy = build_strategy(
        "replay",
        model,
        None,
        plugins=[fast_plugin()],
        evaluator=evaluator,
        mem_size=40,
        train_mb_size=32,
        train_epochs=2,
        **build,
    )
    strategy, start = maybe_load_checkpoint(strategy, str(path))
    for exp in bm.scenario.train_stream[start:]:
        strategy.train(exp)
        strategy.eval(bm.scenario.test_stream)
        save_checkpoint(strategy, str(path))
        if stop_after is not None and exp.current_experience == stop_after:
            return None
    writer = strategy.evaluator.loggers[0]
    plugin = next(p for p in strategy.plugins if isinstance(p, GrowPlugin))
    return {
        "metrics": writer.last(),
        "sizes": sites(strategy.model).hidden_sizes,
        "events": [(e.experience, e.report.allocation) for e in plugin.events],
        "state": {k: v.clone() for k, v in strategy.model.state_dict().items()},
        "opt_params": sum(len(g["params"]) for g in strategy.optimizer.param_groups),
        "n_params": len(list(strategy.model.parameters())),
        "all_optimized": all_params_optimized(strategy),
        "plugins": strategy.plugins,
    }


def test_interrupted_run_resumes_to_the_same_result(split_digits, tmp_path):
    straight = _run(split_digits, tmp_path / "a.pkl")
    assert _run(split_digits, tmp_path / "b.pkl", stop_after=1) is None
    resumed = _run(split_digits, tmp_path / "b.pkl")
    assert resumed["sizes"] == straight["sizes"] and sum(straight["sizes"]) == 16 + 4 * 4
    assert resumed["events"] == straight["events"] and len(straight["events"]) == 4
    assert resumed["opt_params"] == resumed["n_params"]
    for k, v in straight["state"].items():
        assert torch.equal(v, resumed["state"][k]), k
    # metrics recorded before the interruption live in the checkpointed writer too
    assert resumed["metrics"].keys() == straight["metrics"].keys()
    for k, v in straight["metrics"].items():
        if "Time" not in k:
            assert resumed["metrics"][k] == v, k


def test_plugin_pickles_its_state_dict_not_its_history(split_digits):
    """Checkpoint size does not grow with the tensors and method details of past growth steps."""
    import pickle

    from clgrow import GrowthReport
    from clgrow.strategies import GrowthEvent

    def sized(n_events: int, k: int) -> tuple[int, GrowPlugin]:
        plugin = fast_plugin()
        plugin.distributor.info = {"scores": {0: [0.5] * (2 * k)}}
        for e in range(n_events):
            before = [8 + e * k, 8]
            report = GrowthReport(
                {0: k, 1: 0},
                {0: torch.arange(before[0], before[0] + k)},
                {"distributor": 0.1, "extender": 0.2, "total": 0.3},
                e + 1,
                before,
                [before[0] + k, 8],
                "SWE()",
                "SVoD()",
                {"distributor": {"scores": [0.1] * 2 * k}},
            )
            plugin.events.append(GrowthEvent(e + 1, 0, report))
            plugin.cohort_experience[e + 1] = e + 1
        return len(pickle.dumps(plugin)), plugin

    small, _ = sized(3, 4)
    big, plugin = sized(3, 20_000)
    assert big < small + 2_000, (small, big)
    again = pickle.loads(pickle.dumps(plugin))
    assert again.cohort_experience == plugin.cohort_experience
    for a, b in zip(again.events, plugin.events):
        assert (a.experience, a.epoch, a.report.allocation, a.report.cohort) == (
            b.experience,
            b.epoch,
            b.report.allocation,
            b.report.cohort,
        )
        assert a.report.new_units.keys() == b.report.new_units.keys()
        assert all(torch.equal(a.report.new_units[i], b.report.new_units[i]) for i in a.report.new_units)
    assert plugin.distributor.info  # pickling leaves the live plugin alone


def test_a_run_resumes_bit_identically_across_a_prune(split_digits, tmp_path):
    """Units pruned (SWE's transfer) at experiences 1 and 2, interrupted after 1: the resumed run
    ends with the same widths, prune events and weights as the straight one."""
    from clgrow.strategies.prune_plugin import PrunePlugin

    kw = dict(prune="swe", prune_select="dormant", prune_tau=0.5)
    straight = _run(split_digits, tmp_path / "a.pkl", **kw)
    assert _run(split_digits, tmp_path / "b.pkl", stop_after=1, **kw) is None
    resumed = _run(split_digits, tmp_path / "b.pkl", **kw)
    events = {}
    for name, res in (("straight", straight), ("resumed", resumed)):
        pruner = next(p for p in res["plugins"] if isinstance(p, PrunePlugin))
        events[name] = [(e.experience, {k: v.tolist() for k, v in e.report.removed.items()}) for e in pruner.events]
    assert events["straight"] == events["resumed"] and len(events["straight"]) >= 2
    assert resumed["sizes"] == straight["sizes"] and resumed["all_optimized"]
    for k, v in straight["state"].items():
        assert torch.equal(v, resumed["state"][k]), k
