"""SWE's quality-versus-cost frontier: extender variants x budgets, over seeds.

Three settings:

* ``staged`` (plain PyTorch, the paper's setting): train an MLP, grow it ``--growths`` times by
  ``--k`` units (allocation by the distributor of the variant, default SVoD), train
  ``--epochs-between`` epochs after each growth. Reports new-unit dead/dormant at the end (on the
  test split), accuracy before the first growth, right after it and at the end, growth step /
  training epoch (both timed in the same process) and the extender's peak extra state.
* ``stream`` (continual learning): the runner's stream (default Replay on split-mnist-5k, as in
  the quick grid), growing at every experience.
* ``scale``: one wide layer (default 784-[1024]-10) grown once by a large ``K`` (256): cost, peak
  extra resident memory during the step (Linux ``VmHWM``), accuracy one epoch later.

    python -m clgrow.experiments.bench.frontier --setting staged --data mnist-5k mnist1d --seeds 0 1 2
    python -m clgrow.experiments.bench.frontier --setting stream --seeds 0 1 2
    python -m clgrow.experiments.bench.frontier --setting scale --epochs-before 1 --match default random subsample

Variants are named in ``VARIANTS`` (``--variants`` picks some, ``--match`` by substring).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from clgrow.methods.svod import SVoD as _SVoD
from clgrow.methods.swe import SWE as _SWE

SWE_PAPER, SVOD_PAPER = _SWE.PAPER, _SVoD.PAPER

# label -> (extender name, extender kwargs, distributor kwargs); SVoD always distributes, with its
# default budget unless the row says otherwise.
DEFAULT = (
    "**default** (`SWE()`): factored-column, joint, 0.5 pass (0.15 at a new task), clip 0.5, step 0.03/sqrt(ks), "
    "trust 0.01 widened below SNR 0.5; at a new task old rows restored, protect consumers, new rows <= 1x old norm"
)
PAPER = "swe paper preset (dense, sequential, 1 pass/layer; SVoD 1 + 1)"
_UNSCALED = {"coupling_lr": None, "coupling_scale": "none", "trust": None}  # the paper's step size (Adam at lr)
# Exploration rows before the step was scaled with the layer: coupling_lr 1e-3, unscaled.
_COL = {**_UNSCALED, "coupling": "factored", "normalise": "column", "schedule": "joint"}
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "none": ("none", {}, {}),
    "random": ("random", {}, {}),
    "net2net": ("net2net", {}, {}),
    "gradmax": ("gradmax", {}, {}),
    PAPER: ("swe", dict(SWE_PAPER), dict(SVOD_PAPER)),
    "swe dense, sequential, 0.05 pass/layer (old default)": (
        "swe",
        {**_UNSCALED, "coupling": "dense", "schedule": "sequential", "passes": 0.05},
        {},
    ),
    "swe dense, sequential, 0.25 pass/layer": (
        "swe",
        {**_UNSCALED, "coupling": "dense", "schedule": "sequential", "passes": 0.25},
        {},
    ),
    "swe dense, sequential, 1 pass/layer (SVoD default)": (
        "swe",
        {**_UNSCALED, "coupling": "dense", "schedule": "sequential", "passes": 1.0},
        {},
    ),
    "swe dense, joint, 0.5 pass": ("swe", {**_UNSCALED, "coupling": "dense", "schedule": "joint", "passes": 0.5}, {}),
    "swe dense, joint, 1 pass": ("swe", {**_UNSCALED, "coupling": "dense", "schedule": "joint", "passes": 1.0}, {}),
    "swe factored-pair, joint, 0.5 pass": (
        "swe",
        {**_UNSCALED, "coupling": "factored", "normalise": "pair", "schedule": "joint", "passes": 0.5},
        {},
    ),
    "swe factored-pair, joint, 1 pass": (
        "swe",
        {**_UNSCALED, "coupling": "factored", "normalise": "pair", "schedule": "joint", "passes": 1.0},
        {},
    ),
    "swe factored-column, joint, 0.5 pass, no clip": ("swe", {**_COL, "passes": 0.5, "clip": None}, {}),
    "swe factored-column, joint, 0.5 pass, clip 0.25": ("swe", {**_COL, "passes": 0.5, "clip": 0.25}, {}),
    "swe factored-column, joint, 0.3 pass, clip 0.5": ("swe", {**_COL, "passes": 0.3, "clip": 0.5}, {}),
    "swe factored-column, joint, 0.5 pass, clip 0.5, coupling_lr 2e-3": (
        "swe",
        {**_COL, "passes": 0.5, "clip": 0.5, "coupling_lr": 2e-3},
        {},
    ),
    "swe factored-column, joint, 1 pass, clip 0.5": ("swe", {**_COL, "passes": 1.0, "clip": 0.5}, {}),
    "swe factored-column, sequential, 0.25 pass/layer, clip 0.5": (
        "swe",
        {**_COL, "schedule": "sequential", "passes": 0.25, "clip": 0.5},
        {},
    ),
    DEFAULT: ("swe", {}, {}),
    "swe factored-column, joint, 0.5 pass, clip 0.5, unscaled step 1e-3": (
        "swe",
        {"passes": 0.5, "coupling_scale": "none", "coupling_lr": 1e-3, "trust": None},
        {},
    ),
    "swe factored-column, joint, 0.5 pass, clip 0.5, step 0.016/k": (
        "swe",
        {"passes": 0.5, "coupling_scale": "k", "coupling_lr": 0.016, "trust": None},
        {},
    ),
    "swe factored-column, joint, 0.5 pass, clip 0.5, step 0.01/sqrt(ks) (default before 2026-11-24)": (
        "swe",
        {"passes": 0.5, "coupling_lr": 0.01, "trust": None},
        {},
    ),
    "swe factored-column, joint, 0.5 pass, clip 0.5, step 0.02/sqrt(ks)": (
        "swe",
        {"passes": 0.5, "coupling_lr": 0.02, "trust": None},
        {},
    ),
    "swe factored-column, joint, 0.5 pass, clip 0.5, step 0.03/sqrt(ks), no trust region": (
        "swe",
        {"passes": 0.5, "coupling_lr": 0.03, "trust": None},
        {},
    ),
    "swe factored-column, joint, 0.5 pass, clip 0.5, step 0.04/sqrt(ks)": (
        "swe",
        {"passes": 0.5, "coupling_lr": 0.04, "trust": None},
        {},
    ),
    "swe factored-column, joint, 0.5 pass, clip 0.5, step 0.03/sqrt(ks), fixed trust 0.01 (previous default)": (
        "swe",
        {"passes": 0.5, "trust_snr": None},
        {},
    ),
    # A fixed trust region around the step sizes.
    **{
        f"swe factored-column, joint, 0.5 pass, clip 0.5, step {lr}/sqrt(ks), fixed trust {trust}": (
            "swe",
            {"passes": 0.5, "coupling_lr": lr, "trust": trust, "trust_snr": None},
            {},
        )
        for lr, trust in ((0.03, 0.005), (0.03, 0.02), (0.03, 0.03), (0.1, 0.01), (0.1, 0.02), (0.05, 0.02))
    },
    # The widening threshold (the default's own point, 0.5, is the DEFAULT row).
    **{
        f"swe factored-column, joint, 0.5 pass, clip 0.5, step 0.03/sqrt(ks), trust 0.01 widened below SNR {snr}": (
            "swe",
            {"passes": 0.5, "trust_snr": snr},
            {},
        )
        for snr in (0.3, 1.0)
    },
    # Integrations that leave old tasks where they were (old_rows x consumers).
    # (old_rows x consumers without a bound on the new rows, then with one)
    **{
        f"swe {rows} old rows, {cons} consumers{', fixed trust' if fixed else ''}": (
            "swe",
            {"old_rows": rows, "consumers": cons, "new_norm": None, **({"trust_snr": None} if fixed else {})},
            {},
        )
        for rows, cons, fixed in (
            ("move", "all", False),
            ("move", "all", True),
            ("move", "isolated", False),
            ("move", "isolated", True),
            ("move", "protect", True),
            ("restore", "isolated", False),
            ("restore", "protect", False),
            ("keep", "new", False),
            ("keep", "isolated", False),
            ("keep", "protect", False),
            ("keep", "scaffold", False),
            ("restore", "protect", True),
            ("keep", "protect", True),
            ("restore", "all", False),
            ("restore", "new", False),
            ("move", "protect", False),
            ("move", "new", False),
        )
    },
    **{
        f"swe {rows} old rows, {cons} consumers{', fixed trust' if fixed else ''}, new rows <= {cap}x old norm": (
            "swe",
            {"old_rows": rows, "consumers": cons, "new_norm": cap, **({"trust_snr": None} if fixed else {})},
            {},
        )
        for rows, cons, fixed, cap in (
            ("restore", "protect", False, 1.0),
            ("keep", "protect", False, 1.0),
            ("keep", "protect", False, 0.5),
            ("restore", "protect", True, 1.0),
            ("restore", "protect", False, 0.5),
            ("restore", "protect", False, 2.0),
            ("keep", "protect", True, 1.0),
            ("restore", "all", False, 1.0),
            ("restore", "all", False, 2.0),
        )
    },
    # The default at a new task with other budgets (can more adjustment keep more new units alive?)
    **{
        f"swe default at a new task, {label}": ("swe", kwargs, {})
        for label, kwargs in (
            ("1 pass", {"passes": 1.0}),
            ("step 0.06/sqrt(ks)", {"coupling_lr": 0.06}),
            ("per-pair second moment", {"normalise": "pair"}),
            ("fixed trust 0.01", {"trust_snr": None}),
            ("no trust region", {"trust": None}),
        )
    },
    "default, SVoD at its previous budget (2 candidates, 0.1 + 0.05 passes)": (
        "swe",
        {},
        {"candidates": 2, "train_passes": 0.1, "vote_passes": 0.05},
    ),
    "swe dense, sequential, 0.05 pass/layer, subsample to 512 MiB": (
        "swe",
        {
            **_UNSCALED,
            "coupling": "dense",
            "schedule": "sequential",
            "passes": 0.05,
            "on_oversize": "subsample",
            "max_coupling_bytes": 512 * 2**20,
        },
        {},
    ),
}


def _trained_base(job: dict[str, Any]) -> tuple[Any, Any, Any, list[float]]:
    """``(model, train loader, test loader, epoch seconds)``: the job's MLP trained
    ``epochs_before`` epochs on its embedded data, seeded by the job (one thread)."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from clgrow.experiments.embedded import load_embedded
    from clgrow.experiments.growth_demo import train_epoch
    from clgrow.models import cnn, mlp

    torch.set_num_threads(1)
    data = load_embedded(job["data"])
    torch.manual_seed(job["seed"])
    gen = torch.Generator().manual_seed(job["seed"])
    train = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=job["batch"], shuffle=True, generator=gen)
    test = DataLoader(TensorDataset(data.x_test, data.y_test), batch_size=1000)
    if job.get("channels"):  # a CNN on the images: convolutions, then the hidden layers
        shape = {"mnist-5k": (1, 28, 28), "digits": (1, 8, 8)}[job["data"]]
        model = cnn(shape, job["channels"], job["hidden"], data.num_classes)
    else:
        model = mlp(data.x_train.shape[1], job["hidden"], data.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    epochs = [train_epoch(model, train, opt) for _ in range(job["epochs_before"])]
    return model, train, test, epochs


def _staged(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    from clgrow import SVoD, extenders, grow, measure_inactivity
    from clgrow.experiments.growth_demo import accuracy, train_epoch

    ext_name, ext_kwargs, dist_kwargs = VARIANTS[job["variant"]]
    model, train, test, epochs = _trained_base(job)
    seed = job["seed"]
    acc_before = accuracy(model, test)
    growth_s, acc_grown, extra_mib = [], [], 0.0
    torch.manual_seed(seed + 1000)
    for _ in range(job["growths"]):
        report = grow(model, job["k"], train, extenders[ext_name](**ext_kwargs), SVoD(**dist_kwargs))
        growth_s.append(report.seconds["total"])
        extra_mib = max([extra_mib] + [v.get("coupling_mib", 0.0) for v in report.info["extender"].values()])
        acc_grown.append(accuracy(model, test))
        if len(acc_grown) == 1:
            first = measure_inactivity(model, test)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        epochs += [train_epoch(model, train, opt) for _ in range(job["epochs_between"])]
    stats = measure_inactivity(model, test)
    epoch = statistics.median(epochs)
    return {
        **job,
        "growth_per_epoch": statistics.fmean(growth_s) / epoch,
        "acc_before": acc_before,
        "acc_grown": acc_grown[0],
        "acc_final": accuracy(model, test),
        "new_dead": stats.new_dead_fraction,
        "new_dormant": stats.new_dormant_fraction,
        "grown_dormant": first.new_dormant_fraction,
        "extra_mib": extra_mib,
    }


def _step(job: dict[str, Any]) -> dict[str, Any]:
    """One growth step at a new task, at the source : an MLP trained
    ``epochs_before`` epochs on digits 0/1 (task 0), then ``grow(..., new_task=True)`` on the
    training data of digits 2/3 (task 1); task 0's test accuracy and output KL right before and
    right after, with one head per task (``task_labels``) or one 10-way head."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from clgrow import Probe, SVoD, extenders, grow, mlp, output_change, probe_outputs
    from clgrow.experiments.embedded import load_embedded
    from clgrow.strategies import with_task_heads

    torch.set_num_threads(1)
    data = load_embedded(job["data"])
    til = job["task_labels"]

    def task(x: Any, y: Any, classes: tuple[int, int], t: int) -> TensorDataset:
        keep = (y == classes[0]) | (y == classes[1])
        target = (y[keep] == classes[1]).long() if til else y[keep]
        return TensorDataset(x[keep], target, torch.full((int(keep.sum()),), t))

    train = [task(data.x_train, data.y_train, c, t) for t, c in enumerate(((0, 1), (2, 3)))]
    test = [task(data.x_test, data.y_test, c, t) for t, c in enumerate(((0, 1), (2, 3)))]
    torch.manual_seed(job["seed"])
    m = data.x_train.shape[1]
    model: Any = (
        with_task_heads(mlp(m, job["hidden"], None), 2, torch.zeros(2, m))
        if til
        else mlp(m, job["hidden"], data.num_classes)
    )
    if til:  # task 1's head, as Avalanche's adaptation adds it
        from avalanche.models import IncrementalClassifier

        heads = model.classifier
        heads.classifiers["1"] = IncrementalClassifier(heads.in_features, 2, masking=False, auto_adapt=False)
    gen = torch.Generator().manual_seed(job["seed"])
    loaders = [DataLoader(ds, batch_size=job["batch"], shuffle=True, generator=gen) for ds in train]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    started = time.perf_counter()
    for _ in range(job["epochs_before"]):
        for x, y, t in loaders[0]:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x, t) if til else model(x), y).backward()
            opt.step()
    epoch = (time.perf_counter() - started) / max(job["epochs_before"], 1)
    probes = [Probe(t, *ds.tensors) for t, ds in enumerate(test)]
    before = [probe_outputs(model, p) for p in probes]
    ext_name, ext_kwargs, dist_kwargs = VARIANTS[job["variant"]]
    torch.manual_seed(job["seed"] + 1000)
    report = grow(model, job["k"], loaders[1], extenders[ext_name](**ext_kwargs), SVoD(**dist_kwargs), new_task=True)
    old = output_change(before[0], probe_outputs(model, probes[0]), probes[0].y)
    new = output_change(before[1], probe_outputs(model, probes[1]), probes[1].y)
    return {
        **job,
        "acc_before": old.accuracy_before,
        "acc_grown": old.accuracy_after,
        "kl": old.kl,
        "new_before": new.accuracy_before,
        "new_grown": new.accuracy_after,
        "growth_per_epoch": report.seconds["total"] / epoch,
    }


def _rss_mib(key: str) -> float:
    """``VmRSS`` or ``VmHWM`` of this process in MiB (Linux)."""
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith(key)).split()[1]) / 1024


def _scale(job: dict[str, Any]) -> dict[str, Any]:
    """One wide layer grown once by ``k``: cost, peak extra memory, accuracy one epoch later."""
    import torch

    from clgrow import GrowthError, SVoD, extenders, grow
    from clgrow.experiments.growth_demo import accuracy, train_epoch

    ext_name, ext_kwargs, dist_kwargs = VARIANTS[job["variant"]]
    model, train, test, epochs = _trained_base(job)
    acc_before = accuracy(model, test)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # Linux: reset the peak resident set (VmHWM) to now
    base = _rss_mib("VmRSS")
    try:
        report = grow(model, job["k"], train, extenders[ext_name](**ext_kwargs), SVoD(**dist_kwargs))
    except GrowthError as err:
        return {**job, "refused": str(err)}
    peak = _rss_mib("VmHWM") - base
    acc_grown = accuracy(model, test)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    epochs.append(train_epoch(model, train, opt))
    return {
        **job,
        "growth_per_epoch": report.seconds["total"] / statistics.median(epochs),
        "acc_before": acc_before,
        "acc_grown": acc_grown,
        "acc_final": accuracy(model, test),
        "peak_mib": peak,
    }


#: Strategy hyperparameters of the stream setting (Replay's buffer as in the quick grid, SI's λ = 1
#: as in the earlier stream measurements; EWC and LwF at the builders' defaults).
STREAM_STRATEGY_KWARGS: dict[str, dict[str, Any]] = {"replay": {"mem_size": 200}, "si": {"si_lambda": 1.0}}


def _stream(job: dict[str, Any]) -> dict[str, Any]:
    import warnings

    warnings.filterwarnings("ignore")
    from clgrow.experiments.config import RunConfig
    from clgrow.experiments.runner import run
    from clgrow.strategies.schedule import GrowthConfig

    ext_name, ext_kwargs, dist_kwargs = VARIANTS[job["variant"]]
    growth = "none" if ext_name == "none" else "swe-svod" if ext_name == "swe" else f"{ext_name}-svod"
    strategy = job["strategy"]
    cfg = RunConfig(
        benchmark=job["data"],
        strategy=strategy,
        growth=growth,
        seed=job["seed"],
        hidden_sizes=job["hidden"],
        threads=1,
        task_labels=job["task_labels"],
        train_mb_size=job["batch"],
        train_epochs=job["epochs"],
        grow=GrowthConfig()  # growth settings do not apply to a fixed model
        if growth == "none"
        else GrowthConfig(neurons_per_experience=job["k"], extender_kwargs=ext_kwargs, distributor_kwargs=dist_kwargs),
        strategy_kwargs=STREAM_STRATEGY_KWARGS.get(strategy, {}),
    )
    s = run(cfg.resolve())
    grown = ext_name != "none"
    return {
        **job,
        "growth_per_epoch": (
            statistics.fmean(e["seconds"]["total"] for e in s.growth_events) / s.epoch_seconds_median
            if grown and s.epoch_seconds_median
            else math.nan
        ),
        "acc_final": s.final_accuracy,
        "learning": s.learning_accuracy,
        "forgetting": s.average_forgetting,
        "disruption": math.nan if s.mean_growth_disruption is None else s.mean_growth_disruption,
        "disruption_max": max((v for v in s.growth_disruption if v is not None), default=math.nan),
        "kl": statistics.fmean(v for v in s.growth_disruption_kl if v is not None) if grown else math.nan,
        "new_dead": s.new_dead_fraction[-1] if grown else math.nan,
        "new_dormant": s.new_dormant_fraction[-1] if grown else math.nan,
        "probe_per_epoch": (
            statistics.fmean(e.get("probe_seconds", 0.0) for e in s.growth_events) / s.epoch_seconds_median
            if grown and s.epoch_seconds_median
            else math.nan
        ),
    }


def _ms(vals: Sequence[float], pct: bool, digits: int | None = None) -> str:
    k = 100.0 if pct else 1.0
    vals = [v * k for v in vals if v is not None and not math.isnan(v)]
    if not vals:
        return "—"
    d = (1 if pct else 2) if digits is None else digits
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.fmean(vals):.{d}f} ± {sd:.{d}f}"


def _print_table(
    a: argparse.Namespace,
    data: str,
    strategy: str,
    what: str,
    cols: list[tuple[str, str, bool]],
    results: list[dict[str, Any]],
) -> None:
    """One Markdown table: a row per variant, mean ± std over seeds."""
    extra = STREAM_STRATEGY_KWARGS.get(strategy)
    label = "" if strategy == "-" else f" · {strategy}" + (f" {extra}" if extra else "")
    print(f"\n{data}{label}: {what}; seeds {a.seeds}; fractions in %, mean ± std\n")
    print("| variant | " + " | ".join(c[0] for c in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for v in a.variants:
        rs = [r for r in results if r["variant"] == v and r["data"] == data and r["strategy"] == strategy]
        refused = [r["refused"] for r in rs if "refused" in r]
        if refused:
            print(f"| {v} | refused ({len(refused)}/{len(rs)} seeds): {refused[0][:90]}… |")
            continue
        print(f"| {v} | " + " | ".join(_ms([r[key] for r in rs], pct) for _, key, pct in cols) + " |")


def main(argv: Sequence[str] | None = None) -> None:
    """Print the frontier as Markdown tables, one per data set."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setting", choices=["staged", "stream", "scale", "step"], default="staged")
    p.add_argument(
        "--data", nargs="+", default=None, help="embedded data sets (staged: mnist-5k, mnist1d) or benchmarks (stream)"
    )
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), metavar="LABEL")
    p.add_argument(
        "--match",
        nargs="+",
        default=None,
        metavar="TEXT",
        help="run the variants whose label contains any of these texts",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--hidden", type=int, nargs="+", default=None)
    p.add_argument(
        "--channels",
        nargs="+",
        default=None,
        metavar="C|M",
        help="staged setting: a CNN with these convolutions (M: max-pool) before --hidden",
    )
    p.add_argument("--k", type=int, default=None, help="units per growth step")
    p.add_argument("--growths", type=int, default=2)
    p.add_argument("--epochs-before", type=int, default=3)
    p.add_argument("--epochs-between", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument(
        "--strategy",
        nargs="+",
        default=["replay"],
        choices=["replay", "naive", "ewc", "si", "lwf"],
        help="stream setting: strategies (Replay with 200 samples, SI with lambda 1)",
    )
    p.add_argument(
        "--task-labels",
        action="store_true",
        help="stream setting: task-incremental (one head per task) instead of class-incremental",
    )
    p.add_argument("--epochs", type=int, default=3, help="stream setting: epochs per experience")
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args(argv)
    if a.match:
        a.variants = [v for v in VARIANTS if any(t in v for t in a.match)]
    unknown = [v for v in a.variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    staged = a.setting == "staged"
    defaults = {
        "staged": (["mnist-5k", "mnist1d"], [32, 32, 32], 48),
        "stream": (["split-mnist-5k"], [64, 64], 32),
        "scale": (["mnist-5k"], [1024], 256),
        "step": (["mnist-5k"], [256, 256], 32),
    }[a.setting]
    datas = a.data or defaults[0]
    hidden = a.hidden or defaults[1]
    k = a.k or defaults[2]
    strategies = a.strategy if a.setting == "stream" else ["-"]
    jobs = [
        dict(
            variant=v,
            data=d,
            seed=s,
            hidden=hidden,
            k=k,
            growths=a.growths,
            batch=a.batch,
            strategy=st,
            epochs_before=a.epochs_before,
            epochs_between=a.epochs_between,
            task_labels=a.task_labels,
            epochs=a.epochs,
            channels=[c if c == "M" else int(c) for c in a.channels] if a.channels else None,
        )
        for d in datas
        for st in strategies
        for v in a.variants
        for s in a.seeds
    ]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=a.workers) as pool:
        results = list(
            pool.map({"staged": _staged, "stream": _stream, "scale": _scale, "step": _step}[a.setting], jobs)
        )
    if a.setting == "step":
        cols = [
            ("task 0 before", "acc_before", True),
            ("task 0 right after growth", "acc_grown", True),
            ("task 0 KL (nats)", "kl", False),
            ("task 1 before", "new_before", True),
            ("task 1 right after growth", "new_grown", True),
            ("growth step / epoch", "growth_per_epoch", False),
        ]
        what = (
            f"{'one head per task' if a.task_labels else 'one 10-way head'}, MLP {hidden} trained "
            f"{a.epochs_before} epochs on digits 0/1, one growth of K={k} on digits 2/3 (new_task=True), batch {a.batch}"
        )
    elif a.setting == "scale":
        cols = [
            ("acc before", "acc_before", True),
            ("acc right after growth", "acc_grown", True),
            ("acc +1 epoch", "acc_final", True),
            ("growth step / epoch", "growth_per_epoch", False),
            ("peak extra MiB (VmHWM)", "peak_mib", False),
        ]
        what = f"MLP {hidden}, trained {a.epochs_before} epochs, grown once by K={k}, then 1 epoch, batch {a.batch}"
    elif staged:
        cols = [
            ("new dormant", "new_dormant", True),
            ("new dead", "new_dead", True),
            ("new dormant right after growth 1", "grown_dormant", True),
            ("acc before", "acc_before", True),
            ("acc right after growth 1", "acc_grown", True),
            ("acc final", "acc_final", True),
            ("growth step / epoch", "growth_per_epoch", False),
            ("extender state MiB", "extra_mib", False),
        ]
        net = f"CNN {' '.join(a.channels)} + {hidden}" if a.channels else f"MLP {hidden}"
        what = (
            f"{net}, trained {a.epochs_before} epochs, grown {a.growths}x by K={k} (SVoD), "
            f"{a.epochs_between} epochs after each growth, batch {a.batch}"
        )
    else:
        cols = [
            ("final acc", "acc_final", True),
            ("forgetting", "forgetting", True),
            ("learning acc", "learning", True),
            ("growth disruption", "disruption", True),
            ("worst step", "disruption_max", True),
            ("KL (nats)", "kl", False),
            ("new dormant", "new_dormant", True),
            ("new dead", "new_dead", True),
            ("growth step / epoch", "growth_per_epoch", False),
            ("probes / epoch", "probe_per_epoch", False),
        ]
        what = (
            f"{'task' if a.task_labels else 'class'}-incremental, MLP {hidden}, K={k} per experience, "
            f"{a.epochs} epochs, batch {a.batch}"
        )
    for d in datas:
        for st in strategies:
            _print_table(a, d, st, what, cols, results)
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
