"""Growth budget study: cost of a growth step vs what it buys, over seeds.

Runs the continual-learning stream (default: Replay on split-mnist-5k, as in the quick grid)
with SVoD + SWE at several budgets, and reports per budget: growth step time / one training
epoch of the same experience (both measured in the same run), final stream accuracy,
forgetting, and new-unit dead/dormant fractions (mean ± std over seeds).

    python -m experiments.bench.budget --budgets paper 0.25,0.25,0.25 0.1,0.05,0.05 --seeds 0 1 2

A budget is ``SVOD_TRAIN,SVOD_VOTE,SWE_PASSES`` in passes over the experience's data, or
``paper`` (1,1,1: the paper's procedure) or ``default`` (what ``SWE()`` and ``SVoD()`` use).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from experiments.config import RunConfig


def parse_budget(text: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(label, extender kwargs, distributor kwargs)``."""
    if text == "paper":
        return "paper (1, 1, 1/layer)", {"passes": 1.0}, {"train_passes": 1.0, "vote_passes": 1.0}
    if text == "default":
        from clgrow import SWE, SVoD

        e, d = SWE(), SVoD()
        return f"default ({d.train_passes:g}, {d.vote_passes:g}, {e.passes:g}/layer)", {}, {}
    try:
        t, v, s = (float(x) for x in text.split(","))
    except ValueError:
        raise SystemExit(f"budget must be 'paper', 'default' or TRAIN,VOTE,SWE; got {text!r}") from None
    return f"({t:g}, {v:g}, {s:g}/layer)", {"passes": s}, {"train_passes": t, "vote_passes": v}


def _one(args: tuple[dict[str, Any], str]) -> dict[str, Any]:
    import warnings

    warnings.filterwarnings("ignore")
    from experiments.runner import run

    cfg_dict, label = args
    s = run(RunConfig(**cfg_dict))
    epoch = s["epoch_seconds_median"]
    steps = s["growth_events"]
    return {
        "label": label,
        "ratio": statistics.fmean(e["seconds"]["total"] for e in steps) / epoch,
        "dist_ratio": statistics.fmean(e["seconds"]["distributor"] for e in steps) / epoch,
        "ext_ratio": statistics.fmean(e["seconds"]["extender"] for e in steps) / epoch,
        "acc": s["final_accuracy"],
        "forgetting": s["average_forgetting"],
        "new_dead": s["new_dead_fraction"][-1],
        "new_dormant": s["new_dormant_fraction"][-1],
        "sizes": s["final_hidden_sizes"],
    }


def _ms(vals: list[float], pct: bool) -> str:
    k = 100.0 if pct else 1.0
    vals = [v * k for v in vals if v is not None]
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.fmean(vals):.{1 if pct else 2}f} ± {sd:.{1 if pct else 2}f}"


def main(argv: Sequence[str] | None = None) -> None:
    """Print a Markdown table of the budget study."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budgets", nargs="+", default=["paper", "default"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--benchmark", default="split-mnist-5k")
    p.add_argument("--strategy", default="replay")
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    p.add_argument("--neurons", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args(argv)
    jobs = []
    for b in a.budgets:
        label, ek, dk = parse_budget(b)
        for seed in a.seeds:
            cfg = RunConfig(benchmark=a.benchmark, strategy=a.strategy, growth="swe-svod", seed=seed,
                            hidden_sizes=a.hidden, neurons_per_experience=a.neurons, extender_kwargs=ek,
                            distributor_kwargs=dk, threads=1,
                            strategy_kwargs={"mem_size": 200} if a.strategy == "replay" else {})
            jobs.append((cfg.validate().to_dict(), label))
    with ProcessPoolExecutor(max_workers=a.workers) as pool:
        results = list(pool.map(_one, jobs))
    print(f"\n{a.strategy} on {a.benchmark}, MLP {a.hidden}, K={a.neurons} per experience, seeds {a.seeds}; "
          "budget = (SVoD train passes, SVoD vote passes, SWE passes per layer); times relative to one training "
          "epoch of the same experience, measured in the same run; fractions in %\n")
    print("| budget | growth / epoch | SVoD / epoch | SWE / epoch | final acc | forgetting | new dead | new dormant |")
    print("|---|---|---|---|---|---|---|---|")
    for b in a.budgets:
        label = parse_budget(b)[0]
        rs = [r for r in results if r["label"] == label]
        print(f"| {label} | {_ms([r['ratio'] for r in rs], False)} | {_ms([r['dist_ratio'] for r in rs], False)} | "
              f"{_ms([r['ext_ratio'] for r in rs], False)} | {_ms([r['acc'] for r in rs], True)} | "
              f"{_ms([r['forgetting'] for r in rs], True)} | {_ms([r['new_dead'] for r in rs], True)} | "
              f"{_ms([r['new_dormant'] for r in rs], True)} |")


if __name__ == "__main__":
    main()
