"""Accuracy right after a prune: ``drop`` against ``swe``, per selector, at fractions of the dormant units.

A model is trained as a continual learner would leave it (``--setting stream``: five two-class
tasks of the embedded data in turn, each trained on its data plus a replay buffer of the earlier
tasks, 200 samples per task; ``joint``: all classes at once). Its τ-dormant units are counted on
a probe of the training data (``--probe`` samples per task, as :class:`PrunePlugin` keeps). For
each fraction ``f`` of them, every selector picks ``round(f · dormant)`` units per layer and each
method removes them from a copy of the model; the table gives the test-accuracy change on every
task seen (right after the prune, no training), the output change on the test data, and the prune
step's seconds per training epoch (both timed in the same process).

    python -m clgrow.experiments.bench.prune --seeds 0 1 2
    python -m clgrow.experiments.bench.prune --setting joint --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

SELECTORS = ("dormant", "utility", "norm")
METHODS = ("drop", "swe")


def _train(job: dict[str, Any]) -> tuple[Any, Any, Any, list[float], list[Any]]:
    """``(model, probe batches, test loader, epoch seconds, task test loaders)``."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from clgrow.experiments.embedded import load_embedded
    from clgrow.experiments.growth_demo import train_epoch
    from clgrow.models import cnn, mlp

    torch.set_num_threads(1)
    data = load_embedded(job["data"])
    torch.manual_seed(job["seed"])
    gen = torch.Generator().manual_seed(job["seed"])
    classes = data.num_classes
    tasks = [list(range(c, min(c + 2, classes))) for c in range(0, classes, 2)]
    if job["setting"] == "joint":
        tasks = [list(range(classes))]
    if job.get("channels"):
        shape = {"mnist-5k": (1, 28, 28), "digits": (1, 8, 8)}[job["data"]]
        model = cnn(shape, job["channels"], job["hidden"], classes)
    else:
        model = mlp(data.x_train.shape[1], job["hidden"], classes)
    buffer_x: list[Any] = []
    buffer_y: list[Any] = []
    probe: list[Any] = []
    epochs: list[float] = []
    for task in tasks:
        mask = torch.isin(data.y_train, torch.tensor(task))
        x, y = data.x_train[mask], data.y_train[mask]
        train = DataLoader(
            TensorDataset(torch.cat([x, *buffer_x]), torch.cat([y, *buffer_y])),
            batch_size=job["batch"],
            shuffle=True,
            generator=gen,
        )
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        epochs += [train_epoch(model, train, opt) for _ in range(job["epochs"])]
        keep = torch.randperm(len(y), generator=gen)
        buffer_x.append(x[keep[:200]])
        buffer_y.append(y[keep[:200]])
        probe.append((x[keep[: job["probe"]]], y[keep[: job["probe"]]]))
    seen = torch.isin(data.y_test, torch.tensor([c for t in tasks for c in t]))
    test = DataLoader(TensorDataset(data.x_test[seen], data.y_test[seen]), batch_size=1000)
    return model, probe, test, epochs, tasks


def _job(job: dict[str, Any]) -> list[dict[str, Any]]:
    import copy

    import torch

    from clgrow.experiments.growth_demo import accuracy
    from clgrow.measure.inactivity import measure_inactivity
    from clgrow.methods.prune import prune, select_units
    from clgrow.sites import as_growable

    trained, probe, test, epochs, _ = _train(job)
    epoch = statistics.median(epochs)
    stats = measure_inactivity(trained, probe, tau=job["tau"])
    with torch.no_grad():
        x_test = torch.cat([x for x, _ in test])
    live = copy.deepcopy(trained)  # the pool "live": the dead units (on the probe) removed first
    dead = select_units(live, "dead", probe)
    dead = {layer: idx[: as_growable(live).hidden_sizes[layer] - 1] for layer, idx in dead.items()}
    dead_report = prune(live, dead) if dead else None
    rows = []
    for pool, model in (("all", trained), ("live", live)):
        base = accuracy(model, test)
        with torch.no_grad():
            ref = model.eval()(x_test)
        dormant = select_units(model, "dormant", probe, tau=job["tau"])
        for frac in job["fractions"]:
            count = {layer: round(frac * len(idx)) for layer, idx in dormant.items()}
            count = {layer: min(c, as_growable(model).hidden_sizes[layer] - 1) for layer, c in count.items() if c > 0}
            for sel in SELECTORS:
                units = select_units(model, sel, probe, tau=job["tau"], count=count) if count else {}
                for method in METHODS:
                    m2 = copy.deepcopy(model)
                    started = time.perf_counter()
                    if units:
                        prune(m2, units, method=method, data=probe if method == "swe" else None, measure=False)
                    seconds = time.perf_counter() - started
                    with torch.no_grad():
                        out = m2.eval()(x_test)
                    rows.append(
                        {
                            **job,
                            "pool": pool,
                            "fraction": frac,
                            "selector": sel,
                            "method": method,
                            "removed": sum(len(v) for v in units.values()),
                            "dormant_fraction": stats.dormant_fraction,
                            "dead_removed": 0 if dead_report is None else dead_report.count,
                            "units": sum(trained.hidden_sizes),
                            "acc_before": base,
                            "acc_change": accuracy(m2, test) - base,
                            "output_change": float((out - ref).norm() / ref.norm()),
                            "prune_per_epoch": seconds / epoch,
                        }
                    )
    return rows


def _ms(vals: Sequence[float], scale: float = 1.0, digits: int = 1) -> str:
    vals = [v * scale for v in vals]
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.fmean(vals):+.{digits}f} ± {sd:.{digits}f}"


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setting", choices=["stream", "joint"], default="stream")
    p.add_argument("--data", default="mnist-5k")
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    p.add_argument("--channels", nargs="+", default=None, help="a CNN, e.g. 8 M 16 M")
    p.add_argument("--epochs", type=int, default=3, help="epochs per task")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--probe", type=int, default=200, help="probe samples per task (what the units are scored on)")
    p.add_argument("--tau", type=float, default=0.025)
    p.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25, 0.5])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args(argv)
    channels = None if a.channels is None else [c if c == "M" else int(c) for c in a.channels]
    jobs = [
        {
            "setting": a.setting,
            "data": a.data,
            "hidden": a.hidden,
            "channels": channels,
            "epochs": a.epochs,
            "batch": a.batch,
            "probe": a.probe,
            "tau": a.tau,
            "fractions": a.fractions,
            "seed": s,
        }
        for s in a.seeds
    ]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=a.workers) as executor:
        results = [r for rows in executor.map(_job, jobs) for r in rows]
    first = [r for r in results if r["fraction"] == a.fractions[0] and r["selector"] == "dormant"]
    first = [r for r in first if r["pool"] == "all" and r["method"] == "drop"]
    arch = f"channels {channels} + " if channels else ""
    print(
        f"\n{a.data}, {a.setting}, {arch}hidden {a.hidden}, {a.epochs} epochs per task; seeds {a.seeds}; "
        f"accuracy {_ms([r['acc_before'] for r in first], 100)} %, "
        f"dormant {_ms([r['dormant_fraction'] for r in first], 100)} % of {first[0]['units']} units "
        f"(τ = {a.tau}, on {a.probe} probe samples per task), of which dead "
        f"{statistics.fmean(r['dead_removed'] for r in first):.0f}; {time.perf_counter() - started:.0f} s"
    )
    for pool, what in (
        ("all", "fractions of every dormant unit, dead ones included"),
        ("live", "the dead units removed first (exact on the probe); fractions of the dormant units left"),
    ):
        print(f"\n{what}:\n")
        print(
            "| fraction of dormant | selector | units removed | Δ accuracy, drop | Δ accuracy, swe | "
            "output change, drop | output change, swe | prune step / epoch, swe |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for frac in a.fractions:
            for sel in SELECTORS:
                rs = {
                    m: [
                        r
                        for r in results
                        if r["pool"] == pool and r["fraction"] == frac and r["selector"] == sel and r["method"] == m
                    ]
                    for m in METHODS
                }
                removed = statistics.fmean(r["removed"] for r in rs["drop"])
                print(
                    f"| {frac:.0%} | {sel} | {removed:.0f} | "
                    + " | ".join(_ms([r["acc_change"] for r in rs[m]], 100, 2) for m in METHODS)
                    + " | "
                    + " | ".join(_ms([r["output_change"] for r in rs[m]], 100, 1) for m in METHODS)
                    + f" | {statistics.fmean(r['prune_per_epoch'] for r in rs['swe']):.3f} |"
                )


if __name__ == "__main__":
    main()
