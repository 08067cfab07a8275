"""The stream matrix: does SWE keep new units alive *and* old tasks intact, in every standard stream?

Runs {class-, task-incremental} × strategies × variants × seeds in the 1-epoch regime (default:
``split-mnist-aug``, 60,000 training images, so an experience takes as many optimizer steps at
batch 64 as on full MNIST; MLP [128, 128] growing by 64 units per experience; Adam 1e-3), with
random growth and a fixed model at the grown widths as the paired baselines, and prints, per cell,
a table and each growing row's verdict on the five goals:

1. *alive*: new units ≤ 5 % τ-dormant at the end, at most half of random growth's, and no growth
   cohort above 10 % at any evaluation;
2. *intact*: growth disruption ≤ 1 point on the mean and ≤ 2 at the worst step;
3. *no worse*: forgetting ≤ random's + one std, learning accuracy ≥ random's − 0.5 point, final
   accuracy ≥ the fixed model's − 1 point (paired over seeds);
4. *affordable*: growth ≤ 20 % of the run's training and growth multiply-adds, a step ≤ 1 epoch;
5. (*staged*: the plain-training frontier, ``frontier --setting staged``; not part of this matrix.)

    python -m clgrow.experiments.bench.streams                                   # MLP, 16 cells' worth
    python -m clgrow.experiments.bench.streams --channels 8 M 16 M --hidden 64 --k 32   # a CNN
    python -m clgrow.experiments.bench.streams --variants default "previous default" --cache runs/matrix

Every run's result is kept under ``--cache`` (one JSON file per run), so a second call with more
variants or seeds only runs what is missing.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Variant", "VARIANTS", "GOALS", "verdicts", "main"]


# a fixed-split row: the final widths of the default's run, split among experiences in advance
SPLIT_RUN: dict[str, Any] = {"match_final_size": "swe+svod", "match_split": True}


@dataclass(frozen=True)
class Variant:
    """One row of the matrix.

    ``growth`` is an extender name (``swe``, ``random``, ...) grown with SVoD, or ``fixed`` (no
    growth, at the final widths that row ``widths_of`` reached with the same seed). ``run`` holds
    run-level settings (``reset_optimizer``), applied to the paired baselines ``random`` and
    ``fixed`` of the same regime.
    """

    growth: str
    _: KW_ONLY
    extender: dict[str, Any] = field(default_factory=dict)
    distributor_name: str = "svod"
    distributor: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    grow: dict[str, Any] = field(default_factory=dict)  # other growth-schedule settings (isolation)
    widths_of: str | None = None
    split: bool = False  # a fixed row: its units split among experiences as ``widths_of`` grew them
    random: str | None = None  # the paired baselines a growing row is judged against
    fixed: str | None = None


_CARRY = {"reset_optimizer": False}
#: The previous default's budgets and integration at a new experience.
_PREVIOUS_SWE = {"passes": 0.5, "rehearsal_consumers": "all"}
_PREVIOUS_SVOD = {"train_passes": 0.1, "vote_passes": 0.05}

VARIANTS: dict[str, Variant] = {
    "default": Variant("swe", random="random", fixed="fixed-final"),
    "random": Variant("random"),
    "fixed-final": Variant("fixed", widths_of="default"),
    "previous default (carried optimizer, SWE 0.5 pass, SVoD 0.1 + 0.05, all consumers with replay)": Variant(
        "swe",
        extender=_PREVIOUS_SWE,
        distributor=_PREVIOUS_SVOD,
        run=_CARRY,
        random="random, carried optimizer",
        fixed="fixed-final, carried",
    ),
    "default, carried optimizer": Variant(
        "swe", run=_CARRY, random="random, carried optimizer", fixed="fixed-final, carried"
    ),
    "random, carried optimizer": Variant("random", run=_CARRY),
    "fixed-final, carried": Variant("fixed", run=_CARRY, widths_of="default, carried optimizer"),
    "default, all consumers with replay": Variant(
        "swe", extender={"rehearsal_consumers": "all"}, random="random", fixed="fixed-final"
    ),
    "default, SWE 0.5 pass": Variant("swe", extender={"passes": 0.5}, random="random", fixed="fixed-final"),
    "default, SWE 0.1 pass": Variant("swe", extender={"passes": 0.1}, random="random", fixed="fixed-final"),
    "default, SVoD 0.1 + 0.05": Variant("swe", distributor=_PREVIOUS_SVOD, random="random", fixed="fixed-final"),
    "SWE with the proportional distributor (no candidate copy)": Variant(
        "swe", distributor_name="proportional", random="random, proportional", fixed="fixed-final, proportional"
    ),
    "random, proportional": Variant("random", distributor_name="proportional"),
    # SVoD's candidates capped per layer (the default caps at half a layer's width; BENCHMARKS.md)
    "SWE, SVoD uncapped (the paper's 2K candidates)": Variant(
        "swe", distributor={"width_cap": None}, random="random, SVoD uncapped", fixed="fixed-final, SVoD uncapped"
    ),
    "random, SVoD uncapped": Variant("random", distributor={"width_cap": None}),
    "fixed-final, SVoD uncapped": Variant("fixed", widths_of="SWE, SVoD uncapped (the paper's 2K candidates)"),
    **{
        f"SWE, SVoD capped at {cap}x width": Variant(
            "swe", distributor={"width_cap": cap}, random="random", fixed="fixed-final"
        )
        for cap in (1.0, 0.25)
    },
    "SWE, SVoD one candidate per unit": Variant(
        "swe", distributor={"candidates": 1, "width_cap": None}, random="random", fixed="fixed-final"
    ),
    "fixed-final, proportional": Variant(
        "fixed", widths_of="SWE with the proportional distributor (no candidate copy)"
    ),
    # units owned by the experience that recruited them (issue: growth that pays)
    "SWE, isolated": Variant(
        "swe", grow={"isolation": "freeze"}, random="random, isolated", fixed="fixed-final, isolated"
    ),
    "random, isolated": Variant("random", grow={"isolation": "freeze"}),
    "fixed-final, isolated": Variant("fixed", widths_of="SWE, isolated"),
    "fixed-split": Variant("fixed", widths_of="SWE, isolated", split=True),
    "SWE, not isolated (the previous default)": Variant(
        "swe", grow={"isolation": "none"}, random="random, not isolated", fixed="fixed-final, not isolated"
    ),
    "random, not isolated": Variant("random", grow={"isolation": "none"}),
    "fixed-final, not isolated": Variant("fixed", widths_of="SWE, not isolated (the previous default)"),
    "SWE, isolated, carried optimizer": Variant(
        "swe", grow={"isolation": "freeze"}, run=_CARRY, random="random, isolated", fixed="fixed-final, isolated"
    ),
}

#: Strategy hyperparameters (Replay's buffer as in the issue's measurement; SI's λ as in the
#: earlier stream tables; LwF at the builders' defaults).
STRATEGY_KWARGS: dict[str, dict[str, Any]] = {"replay": {"mem_size": 500}, "si": {"si_lambda": 1.0}}


def _run(job: dict[str, Any]) -> dict[str, Any]:
    """One run; its result as plain data (read back from ``job["cache"]`` when there)."""
    cache = Path(job["cache"]) if job.get("cache") else None
    if cache is not None and cache.is_file():
        return dict(json.loads(cache.read_text()))
    import warnings

    warnings.filterwarnings("ignore")
    from clgrow.experiments.config import RunConfig
    from clgrow.experiments.console import quiet_avalanche_deprecations
    from clgrow.experiments.runner import run
    from clgrow.strategies.schedule import GrowthConfig

    quiet_avalanche_deprecations()  # Avalanche's decorator overrides the filter above
    v = VARIANTS[job["variant"]]
    fixed = v.growth == "fixed"
    cfg = RunConfig(
        benchmark=job["data"],
        data_root=job["data_root"],
        strategy=job["strategy"],
        growth="none" if fixed else f"{v.growth}+{v.distributor_name}",
        seed=job["seed"],
        hidden_sizes=job["sizes"],
        model=job["model"],
        channels=job["channels"] or [16, "M", 32, "M"],
        threads=1,
        task_labels=job["task_labels"],
        train_mb_size=job["batch"],
        train_epochs=job["epochs"],
        grow=GrowthConfig()  # a fixed model grows nothing: growth settings would not apply
        if fixed
        else GrowthConfig(
            neurons_per_experience=job["k"],
            extender_kwargs=dict(v.extender),
            distributor_kwargs=dict(v.distributor),
            **v.grow,
        ),
        strategy_kwargs=STRATEGY_KWARGS.get(job["strategy"], {}),
        **(SPLIT_RUN if v.split else {}),
        **v.run,
    )
    started = time.perf_counter()
    ref = job.get("reference")
    s = run(cfg.resolve(), hidden_sizes=job.get("widths"), split=None if ref is None else ref["hidden_sizes"])
    events = [e["seconds"]["total"] for e in s.growth_events]
    cohorts = [x for name, series in s.cohort_dormant.items() if name != "cohort_initial" for x in series]
    steps = [d for d in s.growth_disruption if d is not None]
    out = {
        "variant": job["variant"],
        "strategy": job["strategy"],
        "task_labels": job["task_labels"],
        "seed": job["seed"],
        "final": s.final_accuracy,
        "learning": s.learning_accuracy,
        "forgetting": s.average_forgetting,
        "new_dormant": None if fixed else s.new_dormant_fraction[-1],
        "worst_cohort": max((x for x in cohorts if x is not None), default=None),
        "disruption": statistics.fmean(steps) if steps else None,
        "disruption_worst": max(steps) if steps else None,
        "share": s.growth_share if not fixed else None,
        "step_epochs": statistics.fmean(events) / s.epoch_seconds_median if events and s.epoch_seconds_median else None,
        "widths": s.final_hidden_sizes,
        "allocations": [{str(k): v for k, v in e["allocation"].items()} for e in s.growth_events],
        "sizes_per_experience": s.hidden_sizes,
        "parameters": s.parameters,
        "seconds": time.perf_counter() - started,
    }
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(out))
    return out


def _values(rows: list[dict[str, Any]], key: str, scale: float = 100.0) -> list[float]:
    return [r[key] * scale for r in rows if r.get(key) is not None]


def _mean(vals: Sequence[float]) -> float:
    return statistics.fmean(vals) if vals else math.nan


def _sd(vals: Sequence[float]) -> float:
    return statistics.stdev(vals) if len(vals) > 1 else 0.0


def _ms(vals: Sequence[float], digits: int = 1) -> str:
    return "—" if not vals else f"{_mean(vals):.{digits}f} ± {_sd(vals):.{digits}f}"


#: The goals' names, in order (the staged one is measured by ``frontier --setting staged``).
GOALS = ("alive", "intact", "no worse", "affordable")


def verdicts(
    row: list[dict[str, Any]], random: list[dict[str, Any]], fixed: list[dict[str, Any]]
) -> dict[str, tuple[bool, str]]:
    """Each goal met or not for one growing row's runs, with the figures that decide it.

    Parameters
    ----------
    row, random, fixed : lists of run results (``_run``), one per seed; ``fixed`` paired by seed.
    """
    nd, nd_random = _mean(_values(row, "new_dormant")), _mean(_values(random, "new_dormant"))
    worst = max(_values(row, "worst_cohort"), default=math.nan)
    alive = nd <= 5.0 and nd <= 0.5 * nd_random and worst <= 10.0
    d_mean, d_worst = _mean(_values(row, "disruption")), _mean(_values(row, "disruption_worst"))
    intact = d_mean <= 1.0 and d_worst <= 2.0
    f, f_random = _mean(_values(row, "forgetting")), _values(random, "forgetting")
    learn, learn_random = _mean(_values(row, "learning")), _mean(_values(random, "learning"))
    by_seed = {r["seed"]: r["final"] for r in fixed}
    paired = [100 * (r["final"] - by_seed[r["seed"]]) for r in row if r["seed"] in by_seed]
    d_final = _mean(paired)
    no_worse = f <= _mean(f_random) + _sd(f_random) and learn >= learn_random - 0.5 and d_final >= -1.0
    share, step = _mean(_values(row, "share")), _mean(_values(row, "step_epochs", 1.0))
    affordable = share <= 20.0 and step <= 1.0
    return {
        "alive": (alive, f"new dormant {nd:.1f} % (random {nd_random:.1f}), worst cohort {worst:.0f} %"),
        "intact": (intact, f"disruption {d_mean:.2f} / worst {d_worst:.2f} pt"),
        "no worse": (
            no_worse,
            f"forgetting {f:.1f} (random {_mean(f_random):.1f} ± {_sd(f_random):.1f}), learning {learn:.1f} "
            f"(random {learn_random:.1f}), final − fixed {d_final:+.1f} pt",
        ),
        "affordable": (affordable, f"growth {share:.1f} % of MACs, step {step:.2f} epoch"),
    }


_COLUMNS = (
    ("final acc", "final", 100.0),
    ("learning acc", "learning", 100.0),
    ("forgetting", "forgetting", 100.0),
    ("new dormant", "new_dormant", 100.0),
    ("worst cohort", "worst_cohort", 100.0),
    ("disruption", "disruption", 100.0),
    ("worst step", "disruption_worst", 100.0),
    ("growth share", "share", 100.0),
    ("step / epoch", "step_epochs", 1.0),
)


def main(argv: Sequence[str] | None = None) -> dict[tuple[str, bool], dict[str, dict[str, tuple[bool, str]]]]:
    """Run the matrix; print one table per cell and the verdicts; return the verdicts per cell."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="split-mnist-aug", help="benchmark (embedded, or on disk with --data-root)")
    p.add_argument("--data-root", default=None, help="folder holding an on-disk benchmark's files")
    p.add_argument("--strategy", nargs="+", default=["naive", "replay", "si", "lwf"])
    p.add_argument("--incremental", nargs="+", default=["class", "task"], choices=["class", "task"])
    p.add_argument("--variants", nargs="+", default=["default", "random", "fixed-final"], metavar="LABEL")
    p.add_argument("--match", nargs="+", default=None, metavar="TEXT", help="variants whose label holds a text")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 128], help="the MLP's (or the CNN's linear) widths")
    p.add_argument("--channels", nargs="+", default=None, metavar="C|M", help="a CNN: convolution widths, M = pool")
    p.add_argument("--k", type=int, default=64, help="units (and channels) added per experience")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cache", default=None, help="folder keeping each run's result (runs found there are reused)")
    a = p.parse_args(argv)
    if a.match:
        a.variants = [v for v in VARIANTS if any(t in v for t in a.match)]
    unknown = [v for v in a.variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    # a growing row needs its baselines, a fixed row the row whose widths it takes
    wanted = list(a.variants)
    for v in list(wanted):
        spec = VARIANTS[v]
        for extra in (spec.random, spec.fixed, spec.widths_of):
            if extra is not None and extra not in wanted:
                wanted.append(extra)
    for v in list(wanted):
        w = VARIANTS[v].widths_of
        if w is not None and w not in wanted:
            wanted.append(w)
    channels = [c if c == "M" else int(c) for c in a.channels] if a.channels else None
    model = "cnn" if channels else "mlp"
    sizes = [c for c in channels if c != "M"] + a.hidden if channels else a.hidden
    tag = f"{a.data}_{model}_{'-'.join(map(str, channels or []))}_{'-'.join(map(str, a.hidden))}_k{a.k}_e{a.epochs}_b{a.batch}"

    def job(
        variant: str,
        strategy: str,
        til: bool,
        seed: int,
        widths: list[int] | None = None,
        reference: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        cache = None
        if a.cache:
            name = re.sub(
                r"[^A-Za-z0-9.+-]+", "_", f"{tag}__{'til' if til else 'cil'}__{strategy}__{variant}__seed{seed}"
            )
            cache = str(Path(a.cache) / f"{name}.json")
        return dict(
            variant=variant,
            strategy=strategy,
            task_labels=til,
            seed=seed,
            data=a.data,
            data_root=a.data_root,
            sizes=sizes,
            model=model,
            channels=channels,
            k=a.k,
            epochs=a.epochs,
            batch=a.batch,
            widths=widths,
            reference=reference,
            cache=cache,
        )

    cells = [(st, inc == "task") for inc in a.incremental for st in a.strategy]
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    growing = [v for v in wanted if VARIANTS[v].growth != "fixed"]
    with ProcessPoolExecutor(max_workers=a.workers) as pool:
        first = [job(v, st, til, s) for st, til in cells for v in growing for s in a.seeds]
        results += list(pool.map(_run, first))
        grown = {(r["variant"], r["strategy"], r["task_labels"], r["seed"]): r for r in results}

        def reference(v: str, st: str, til: bool, s: int) -> dict[str, Any] | None:
            if not VARIANTS[v].split:
                return None
            r = grown[(VARIANTS[v].widths_of or "", st, til, s)]
            return {"hidden_sizes": r["sizes_per_experience"]}

        second = [
            job(
                v,
                st,
                til,
                s,
                grown[(VARIANTS[v].widths_of or "", st, til, s)]["widths"],
                reference(v, st, til, s),
            )
            for st, til in cells
            for v in wanted
            if VARIANTS[v].growth == "fixed"
            for s in a.seeds
        ]
        results += list(pool.map(_run, second))
    net = f"CNN {' '.join(map(str, channels))} + {a.hidden}" if channels else f"MLP {a.hidden}"
    print(
        f"\n{a.data}: {net}, K={a.k} per experience (SVoD), {a.epochs} epoch(s) per experience, batch {a.batch}, "
        f"Adam 1e-3; seeds {a.seeds}; % and points, mean ± std"
    )
    out: dict[tuple[str, bool], dict[str, dict[str, tuple[bool, str]]]] = {}
    for st, til in cells:
        hyper = STRATEGY_KWARGS.get(st)
        print(f"\n#### {'task' if til else 'class'}-incremental {st}{f' {hyper}' if hyper else ''}\n")
        print("| variant | " + " | ".join(c[0] for c in _COLUMNS) + " |")
        print("|---" * (len(_COLUMNS) + 1) + "|")
        rows = {
            v: [r for r in results if (r["variant"], r["strategy"], r["task_labels"]) == (v, st, til)] for v in wanted
        }
        for v in wanted:
            print(f"| {v} | " + " | ".join(_ms(_values(rows[v], key, scale)) for _, key, scale in _COLUMNS) + " |")
        out[(st, til)] = {}
        for v in wanted:
            spec = VARIANTS[v]
            if spec.random is None or spec.fixed is None:
                continue
            verdict = verdicts(rows[v], rows[spec.random], rows[spec.fixed])
            out[(st, til)][v] = verdict
            marks = "; ".join(f"{g} {'met' if ok else 'MISSED'} ({why})" for g, (ok, why) in verdict.items())
            print(f"\n- *{v}*: {marks}")
    for v in wanted:
        got = [out[c][v] for c in cells if v in out[c]]
        if got:
            counts = ", ".join(f"{g} {sum(x[g][0] for x in got)}/{len(got)}" for g in GOALS)
            print(f"\n**{v}**: goals met in cells: {counts}")
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return out


if __name__ == "__main__":
    main()
