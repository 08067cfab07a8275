"""SI with and without the CPU fix, against Naive, on embedded data.

Avalanche 0.6's SynapticIntelligencePlugin keeps views of the parameters on CPU, so its
importances stay zero and it trains as Naive; clgrow's ``si`` (:class:`clgrow.strategies.SIPlugin`)
keeps copies. This prints final accuracy and average forgetting (mean ± std over seeds) of Naive,
Avalanche's SI and clgrow's SI, with and without growth::

    python -m clgrow.experiments.bench.si_fix --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics

from clgrow.experiments.config import RunConfig
from clgrow.experiments.console import quiet_avalanche_deprecations
from clgrow.experiments.runner import run


def _avalanche_si(si_lambda: float = 1.0, eps: float = 1e-7, **kw):
    from avalanche.training import SynapticIntelligence

    return SynapticIntelligence(si_lambda=si_lambda, eps=eps, **kw)


def measure(
    variant: str, growth: str, seed: int, benchmark: str, si_lambda: float, task_labels: bool = False
) -> tuple[float, float]:
    """(final accuracy, average forgetting) of one run."""
    strategy = "naive" if variant == "naive" else "si"
    kwargs = {} if variant == "naive" else {"si_lambda": si_lambda}
    cfg = RunConfig(
        benchmark=benchmark,
        strategy=strategy,
        growth=growth,
        seed=seed,
        strategy_kwargs=kwargs,
        task_labels=task_labels,
    )
    if variant == "avalanche-si":
        from clgrow.strategies import builders

        with builders.STRATEGIES.replaced("si", _avalanche_si):
            s = run(cfg.resolve())
    else:
        s = run(cfg.resolve())
    assert s.final_accuracy is not None and s.average_forgetting is not None
    return s.final_accuracy, s.average_forgetting


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--benchmark", default="split-mnist-5k")
    p.add_argument("--si-lambda", type=float, default=1.0)
    p.add_argument("--growth", nargs="+", default=["none", "swe-svod"])
    p.add_argument("--task-labels", action="store_true", help="task-incremental (one head per task)")
    args = p.parse_args(argv)
    quiet_avalanche_deprecations()
    print(
        f"{args.benchmark}{' with task labels' if args.task_labels else ''}, si_lambda {args.si_lambda}, "
        f"seeds {args.seeds}"
    )
    print("| strategy | growth | final accuracy | average forgetting |\n|---|---|---|---|")
    for growth in args.growth:
        for variant in ("naive", "avalanche-si", "clgrow-si"):
            res = [measure(variant, growth, s, args.benchmark, args.si_lambda, args.task_labels) for s in args.seeds]
            acc, fgt = zip(*res)

            def sd(v):
                return statistics.stdev(v) if len(v) > 1 else 0.0

            print(
                f"| {variant} | {growth} | {100 * statistics.mean(acc):.1f} ± {100 * sd(acc):.1f} % "
                f"| {100 * statistics.mean(fgt):.1f} ± {100 * sd(fgt):.1f} % |",
                flush=True,
            )


if __name__ == "__main__":
    main()
