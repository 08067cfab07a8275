"""Trace every growth cohort through a stream, step by step: when and how its units die.

Every ``--every`` training iterations (and at each experience's end) the model's hidden
pre-activations are taken on the whole test set and, per layer and cohort (the initial units are
cohort 0), recorded: the fraction of units dead on every test sample, the fraction τ-dormant,
the mean pre-activation on the experiences seen so far and the fraction of those samples a unit
fires on, the mean norm of the units' incoming rows, and how alike the cohort's units are (mean
pairwise correlation of their pre-activations over the test samples).

    python -m clgrow.experiments.bench.cohort_trace --strategy replay --no-reset-optimizer
    python -m clgrow.experiments.bench.cohort_trace --strategy replay --growth random-svod --json trace.json

Prints, per layer and cohort, the dead fraction at the end of every experience, the largest jump
between two consecutive records (and the iteration it ended at), and the cohort's likeness.
"""

from __future__ import annotations

import argparse
import itertools
import json
import warnings
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["trace", "main"]


def _snapshot(model: Any, x: torch.Tensor, seen: torch.Tensor, tau: float) -> dict[str, dict[str, float]]:
    """Per ``L{layer}c{cohort}``: dead, dormant, mean pre-activation and firing fraction on the seen
    experiences, incoming norm and likeness (mean pairwise correlation of pre-activations)."""
    from clgrow.sites import as_growable

    out: dict[str, dict[str, float]] = {}
    grown = as_growable(model)
    was = model.training
    model.eval()
    pre: dict[int, torch.Tensor] = {}
    producers = [grown.members(i)[0].producer for i in range(grown.num_hidden_layers)]
    handles = [
        p.register_forward_hook(lambda mod, args, z, i=i: pre.__setitem__(i, z.detach()))
        for i, p in enumerate(producers)
    ]
    try:
        with torch.no_grad():
            _, acts = grown.run(x, capture=True)
    finally:
        for h in handles:
            h.remove()
    with torch.no_grad():
        for layer, lin in enumerate(producers):
            z = pre[layer]
            mean_abs = acts[layer].abs().mean(0)
            score = mean_abs / mean_abs.mean().clamp_min(1e-12)
            cohort = grown.cohort(layer)
            for c in cohort.unique().tolist():
                sel = cohort == c
                zc = z[:, sel]
                std = (zc - zc.mean(0)) / zc.std(0).clamp_min(1e-9)
                k = int(sel.sum())
                corr = (std.T @ std) / zc.shape[0]
                out[f"L{layer}c{c}"] = {
                    "units": k,
                    "dead": float((acts[layer][:, sel] <= 0).all(0).float().mean()),
                    "dormant": float((score[sel] <= tau).float().mean()),
                    "z_seen": float(zc[seen].mean()),
                    "fires_seen": float((zc[seen] > 0).float().mean()),
                    "incoming": float(lin.weight[sel].flatten(1).norm(dim=1).mean()),
                    "likeness": float((corr.sum() - corr.diagonal().sum()) / max(k * (k - 1), 1)),
                }
    model.train(was)
    return out


def trace(
    strategy_name: str = "replay",
    growth: str = "swe-svod",
    seed: int = 0,
    benchmark: str = "split-mnist-aug",
    hidden: Sequence[int] = (128, 128),
    k: int = 64,
    batch: int = 64,
    epochs: int = 1,
    every: int = 25,
    reset_optimizer: bool = True,
    task_labels: bool = False,
    tau: float = 0.025,
) -> list[dict[str, Any]]:
    """Run one stream and return its records (``{"experience", "iteration", "at", "cohorts"}``)."""
    from avalanche.core import SupervisedPlugin
    from avalanche.training.determinism.rng_manager import RNGManager

    from clgrow import mlp
    from clgrow.experiments.benchmarks import make_benchmark
    from clgrow.strategies import LeanEvaluationPlugin, build_strategy, with_task_heads

    torch.set_num_threads(1)
    bm = make_benchmark(benchmark, 5, seed=0, task_labels=task_labels)
    RNGManager.set_random_seeds(seed)
    model: Any = (
        with_task_heads(mlp(bm.in_features, list(hidden), None), bm.head_size, torch.zeros(2, bm.in_features))
        if task_labels
        else mlp(bm.in_features, list(hidden), bm.num_classes)
    )
    xs, exps = [], []
    for e, exp in enumerate(bm.scenario.test_stream):
        ds = exp.dataset.eval()
        xs += [torch.as_tensor(ds[i][0]).reshape(-1) for i in range(len(ds))]
        exps += [e] * len(ds)
    x, exp_of = torch.stack(xs), torch.tensor(exps)
    records: list[dict[str, Any]] = []

    class Trace(SupervisedPlugin):
        def __init__(self) -> None:
            super().__init__()
            self.iteration = 0

        def record(self, strategy: Any, at: str) -> None:
            e = int(strategy.clock.train_exp_counter)
            snap = _snapshot(strategy.model, x, exp_of <= e, tau)
            records.append({"experience": e, "iteration": self.iteration, "at": at, "cohorts": snap})

        def after_training_iteration(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
            self.iteration += 1
            if self.iteration % every == 0:
                self.record(strategy, "step")

        def after_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
            self.record(strategy, "end")

    kwargs: dict[str, Any] = {"mem_size": 500} if strategy_name == "replay" else {}
    if strategy_name == "si":
        kwargs["si_lambda"] = 1.0
    strategy = build_strategy(
        strategy_name,
        model,
        growth,
        train_mb_size=batch,
        train_epochs=epochs,
        evaluator=LeanEvaluationPlugin(loggers=[]),
        plugins=[Trace()],
        reset_optimizer=reset_optimizer,
        neurons_per_experience=k,
        **kwargs,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for exp in bm.scenario.train_stream:
            strategy.train(exp)
    return records


def summarize(records: list[dict[str, Any]]) -> list[str]:
    """One Markdown row per layer and cohort: dead % after each experience, the steepest rise."""
    ends = [r for r in records if r["at"] == "end"]
    keys = sorted({k for r in records for k in r["cohorts"]}, key=lambda s: (int(s.split("c")[1]), s))
    n = len(ends)
    lines = [
        "| layer, cohort | units | " + " | ".join(f"dead after exp {e}" for e in range(n)) + " | steepest rise | "
        "likeness at its last record |",
        "|---" * (n + 4) + "|",
    ]
    for key in keys:
        series = [(r["iteration"], r["cohorts"][key]) for r in records if key in r["cohorts"]]
        rise, at = 0.0, None
        for (_, a), (it, b) in itertools.pairwise(series):
            if b["dead"] - a["dead"] > rise:
                rise, at = b["dead"] - a["dead"], it
        dead = " | ".join(f"{100 * r['cohorts'][key]['dead']:.0f}" if key in r["cohorts"] else "—" for r in ends)
        layer, cohort = key[1:].split("c")
        where = "—" if at is None else f"+{100 * rise:.0f} points by iteration {at}"
        lines.append(
            f"| {layer}, {cohort} | {series[-1][1]['units']} | {dead} | {where} | {series[-1][1]['likeness']:.2f} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Trace one stream; print the per-cohort table; optionally write every record as JSON."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strategy", default="replay")
    p.add_argument("--growth", default="swe-svod")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--benchmark", default="split-mnist-aug")
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--every", type=int, default=25, help="record every N training iterations")
    p.add_argument("--reset-optimizer", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--task-labels", action="store_true")
    p.add_argument("--json", default=None, help="write every record here")
    a = p.parse_args(argv)
    from clgrow.experiments.console import quiet_avalanche_deprecations

    quiet_avalanche_deprecations()  # Avalanche's decorator overrides trace()'s warning filter
    records = trace(
        a.strategy,
        a.growth,
        a.seed,
        a.benchmark,
        a.hidden,
        a.k,
        a.batch,
        a.epochs,
        a.every,
        a.reset_optimizer,
        a.task_labels,
    )
    regime = "restarted" if a.reset_optimizer else "carried"
    print(
        f"\n{a.benchmark}, {'task' if a.task_labels else 'class'}-incremental {a.strategy}, {a.growth}, MLP {a.hidden} "
        f"+ {a.k} per experience, {a.epochs} epoch(s), batch {a.batch}, optimizer state {regime}, seed {a.seed}; "
        "dead on every test sample, %\n"
    )
    print("\n".join(summarize(records)))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(records, f)
    return records


if __name__ == "__main__":
    main()
