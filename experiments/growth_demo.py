"""Grow a trained MLP once with every extender (SVoD allocation) and compare the new units.

Plain PyTorch, no continual learning: train a 3-hidden-layer ReLU MLP on an embedded data set,
grow it by ``K`` units with each registered extender, train one more pass, and report
new-unit dead/dormant fractions, accuracy and the cost of growth relative to one epoch.

    python -m clgrow.experiments.growth_demo --data mnist-5k --k 32 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from clgrow import SWE, SVoD, extenders, grow, measure_inactivity, mlp
from clgrow.experiments.embedded import EMBEDDED, load_embedded


def train_epoch(model: nn.Module, loader: DataLoader, opt: torch.optim.Optimizer) -> float:
    """One pass of plain training; returns the seconds it took."""
    start = time.perf_counter()
    model.train()
    for x, y in loader:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return time.perf_counter() - start


@torch.no_grad()
def accuracy(model: nn.Module, loader: DataLoader) -> float:
    """Top-1 accuracy on ``loader``."""
    model.eval()
    hits = total = 0
    for x, y in loader:
        hits += int((model(x).argmax(1) == y).sum())
        total += len(y)
    return hits / total


_PAPER = {"swe": SWE.PAPER, "gradmax": dict(passes=1.0)}


def run_seed(
    data_name: str,
    k: int,
    hidden: Sequence[int],
    epochs: int,
    seed: int,
    lr: float,
    paper: bool = False,
    swe_kwargs: dict | None = None,
) -> list[dict]:
    """All extenders for one seed; one dict of figures per extender."""
    data = load_embedded(data_name)
    torch.manual_seed(seed)
    train = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=64, shuffle=True)
    test = DataLoader(TensorDataset(data.x_test, data.y_test), batch_size=512)
    base = mlp(data.x_train.shape[1], list(hidden), data.num_classes)
    opt = torch.optim.Adam(base.parameters(), lr=lr)
    epoch_s = [train_epoch(base, train, opt) for _ in range(epochs)]
    epoch_time = statistics.median(epoch_s)
    acc0 = accuracy(base, test)
    rows = []
    for name in sorted(extenders):
        model = copy.deepcopy(base)
        torch.manual_seed(seed + 1000)
        ext_kwargs = dict(_PAPER.get(name, {})) if paper else {}
        if name == "swe" and swe_kwargs:
            ext_kwargs.update(swe_kwargs)
        dist = SVoD(**SVoD.PAPER) if paper else SVoD()
        report = grow(model, k, train, extenders[name](**ext_kwargs), dist)
        grown = measure_inactivity(model, test)
        acc_grown = accuracy(model, test)
        train_epoch(model, train, torch.optim.Adam(model.parameters(), lr=lr))
        after = measure_inactivity(model, test)
        rows.append(
            {
                "extender": name,
                "allocation": "/".join(str(report.allocation[i]) for i in sorted(report.allocation)),
                "acc_before": acc0,
                "acc_grown": acc_grown,
                "acc_after": accuracy(model, test),
                "new_dead_grown": grown.new_dead_fraction,
                "new_dormant_grown": grown.new_dormant_fraction,
                "new_dead_after": after.new_dead_fraction,
                "new_dormant_after": after.new_dormant_fraction,
                "dist_per_epoch": report.seconds["distributor"] / epoch_time,
                "ext_per_epoch": report.seconds["extender"] / epoch_time,
            }
        )
    return rows


def _fmt(values: list[float], pct: bool = False) -> str:
    scale = 100.0 if pct else 1.0
    vals = [v * scale for v in values if not math.isnan(v)]
    if not vals:
        return "—"
    mean = statistics.fmean(vals)
    if len(vals) == 1:
        return f"{mean:.1f}" if pct else f"{mean:.2f}"
    sd = statistics.stdev(vals)
    return f"{mean:.1f} ± {sd:.1f}" if pct else f"{mean:.2f} ± {sd:.2f}"


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point: prints a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=sorted(EMBEDDED), default="mnist-5k")
    parser.add_argument("--k", type=int, default=32, help="units added by the growth step")
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64, 64])
    parser.add_argument("--epochs", type=int, default=3, help="training epochs before growth")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--paper",
        action="store_true",
        help="the paper's budgets (one pass for SVoD training, voting and each SWE layer) instead of the defaults",
    )
    parser.add_argument(
        "--swe",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="SWE keyword arguments, e.g. --swe passes=0.25 coupling_lr=3e-5",
    )
    args = parser.parse_args(argv)
    swe_kwargs = {}
    for item in args.swe:
        key, _, value = item.partition("=")
        swe_kwargs[key] = float(value)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    per_ext: dict[str, list[dict]] = {}
    for seed in args.seeds:
        for row in run_seed(args.data, args.k, args.hidden, args.epochs, seed, args.lr, args.paper, swe_kwargs):
            per_ext.setdefault(row["extender"], []).append(row)
    budget = ("paper budgets" if args.paper else "default budgets") + (f", SWE{swe_kwargs}" if swe_kwargs else "")
    print(
        f"\n{args.data}: MLP {args.hidden}, trained {args.epochs} epochs, grown by K={args.k} (SVoD, {budget}), "
        f"then 1 more pass; seeds {args.seeds}; fractions in %, times relative to one training epoch\n"
    )
    cols = [
        ("acc before", "acc_before", True),
        ("acc grown", "acc_grown", True),
        ("acc +1 pass", "acc_after", True),
        ("new dead", "new_dead_grown", True),
        ("new dormant", "new_dormant_grown", True),
        ("new dead +1", "new_dead_after", True),
        ("new dormant +1", "new_dormant_after", True),
        ("SVoD / epoch", "dist_per_epoch", False),
        ("extender / epoch", "ext_per_epoch", False),
    ]
    print("| extender | allocation (seed 0) | " + " | ".join(c[0] for c in cols) + " |")
    print("|---" * (len(cols) + 2) + "|")
    for name, rows in per_ext.items():
        cells = [_fmt([r[key] for r in rows], pct) for _, key, pct in cols]
        print(f"| {name} | {rows[0]['allocation']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
