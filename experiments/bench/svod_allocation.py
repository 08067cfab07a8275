"""How close a cheaper SVoD's allocation stays to the paper's, on the same trained model.

A stream's allocations differ between variants for two reasons: the variant, and everything the
run did before (one seed's training diverges from another's). This bench removes the second: it
trains one model on the first task of ``mnist-aug`` (digits 0-1, 1 epoch, Adam 1e-3, batch 64),
then lets every variant allocate ``K`` units for the second task (digits 2-3, ``new_task=True``)
``--draws`` times, each with its own candidates. Per variant it prints the mean allocation
(fraction per layer), the mean distance of a draw to the paper's mean allocation
(``L1 / (2K)``: 0 the same, 1 disjoint), the spread of the paper's own draws around their mean
(the noise floor), and the candidate copy's cost per sample relative to the model.

    python -m clgrow.experiments.bench.svod_allocation                                   # MLP [128, 128]
    python -m clgrow.experiments.bench.svod_allocation --channels 8 M 16 M --hidden 64 --k 32   # CNN
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["VARIANTS", "REFERENCE", "main"]

#: label -> (distributor name, its arguments); the first is the reference (the paper's 2K candidates).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "SVoD uncapped (the paper's 2K candidates)": ("svod", {"width_cap": None}),
    "SVoD capped at 1.0x width": ("svod", {"width_cap": 1.0}),
    "SVoD capped at 0.5x width (default)": ("svod", {}),
    "SVoD capped at 0.5x width, votes pooled as drawn": ("svod", {"_votes": "drawn"}),
    "SVoD capped at 0.5x width, every layer votes with 2K": ("svod", {"_votes": "2K"}),
    "SVoD capped at 0.25x width": ("svod", {"width_cap": 0.25}),
    "SVoD one candidate per unit": ("svod", {"candidates": 1, "width_cap": None}),
    "proportional (no candidate copy)": ("proportional", {}),
}


REFERENCE = next(iter(VARIANTS))


def _trained(seed: int, channels: list[int | str] | None, hidden: list[int]) -> tuple[torch.nn.Module, Any]:
    """The model after one epoch on digits 0-1, and a loader of digits 2-3 (its growth data)."""
    from torch.utils.data import DataLoader, TensorDataset

    from clgrow.experiments.embedded import load_embedded
    from clgrow.experiments.growth_demo import train_epoch
    from clgrow.models import cnn, mlp

    data = load_embedded("mnist-aug")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    first, second = data.y_train < 2, (data.y_train >= 2) & (data.y_train < 4)
    x = data.x_train if channels is None else data.x_train.view(-1, 1, 28, 28)
    model = mlp(784, hidden, 10) if channels is None else cnn((1, 28, 28), channels, hidden, 10)
    train = DataLoader(TensorDataset(x[first], data.y_train[first]), batch_size=64, shuffle=True, generator=gen)
    train_epoch(model, train, torch.optim.Adam(model.parameters(), lr=1e-3))
    grow_data = DataLoader(TensorDataset(x[second], data.y_train[second]), batch_size=64, shuffle=True, generator=gen)
    return model, grow_data


def _allocate(model: torch.nn.Module, loader: Any, k: int, variant: str, draw: int) -> tuple[dict[int, int], float]:
    """One allocation and the candidate copy's multiply-adds per sample relative to the model's."""
    from clgrow import distributors
    from clgrow.measure.compute import measure
    from clgrow.methods import svod as svod_module
    from clgrow.methods.svod import SVoD
    from clgrow.sites import as_growable

    name, kwargs = VARIANTS[variant]
    kwargs = dict(kwargs)
    votes = kwargs.pop("_votes", None)
    dist = distributors[name](**kwargs)
    torch.manual_seed(1000 + draw)
    resample = svod_module._resample
    if votes == "drawn":  # each layer's drawn scores vote as they are
        svod_module._resample = lambda scores, n: scores
    elif votes == "2K":  # every layer resampled to the paper's count, whatever the others'
        svod_module._resample = lambda scores, n: resample(scores, 2 * k)
    try:
        alloc = dist.allocate(model, k, loader, torch.nn.functional.cross_entropy, new_task=True)
    finally:
        svod_module._resample = resample
    cost = 0.0
    if isinstance(dist, SVoD):
        grown = as_growable(model)
        layers = list(range(grown.num_hidden_layers))
        cand = dist.candidates_for(model, k, layers)
        x = next(iter(loader))[0][:1]
        cost = _copy_macs(model, cand, loader) / measure(model, x)[0] - 1.0
    return alloc, cost


def _copy_macs(model: torch.nn.Module, cand: dict[int, int], loader: Any) -> float:
    """Multiply-adds per sample of ``model`` with ``cand[layer]`` units added (a grown deep copy)."""
    import copy

    from clgrow.measure.compute import measure
    from clgrow.methods.extender import RandomExtender

    c = copy.deepcopy(model)
    RandomExtender().extend(c, cand, loader, None, cohort=99)
    return float(measure(c, next(iter(loader))[0][:1])[0])


def _distance(a: dict[int, float], b: dict[int, float], k: int) -> float:
    return sum(abs(a.get(i, 0.0) - b.get(i, 0.0)) for i in set(a) | set(b)) / (2 * k)


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    """Run every variant (and the paper's, the reference); print the table; return
    ``{variant: {distance, distance_sd, cost}}``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    p.add_argument("--channels", nargs="+", default=None, metavar="C|M")
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--draws", type=int, default=8)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), metavar="LABEL")
    a = p.parse_args(argv)
    channels = [c if c == "M" else int(c) for c in a.channels] if a.channels else None
    torch.set_num_threads(1)
    reference = REFERENCE
    a.variants = [reference] + [v for v in a.variants if v != reference]
    rows: dict[str, dict[str, list[float]]] = {v: {"distance": [], "floor": [], "cost": []} for v in a.variants}
    shares: dict[str, list[dict[int, int]]] = {v: [] for v in a.variants}
    for seed in a.seeds:
        model, loader = _trained(seed, channels, a.hidden)
        draws = {v: [_allocate(model, loader, a.k, v, d) for d in range(a.draws)] for v in a.variants}
        ref = draws[reference]
        mean_ref = {i: statistics.fmean(al[i] for al, _ in ref) for i in ref[0][0]}
        for v in a.variants:
            got = draws[v]
            rows[v]["distance"] += [_distance({i: float(n) for i, n in al.items()}, mean_ref, a.k) for al, _ in got]
            rows[v]["cost"] += [c for _, c in got]
            shares[v] += [al for al, _ in got]
    net = f"CNN {' '.join(map(str, channels))} + {a.hidden}" if channels else f"MLP {a.hidden}"
    print(
        f"\n{net}, K={a.k} at a new task (digits 2-3 after 1 epoch on 0-1), seeds {a.seeds}, "
        f"{a.draws} draws each; distance to the paper's mean allocation, L1/(2K)\n"
    )
    print("| variant | allocation (fraction per layer) | distance | copy's extra MACs / model |")
    print("|---|---|---|---|")
    out: dict[str, dict[str, float]] = {}
    for v in a.variants:
        layers = sorted(shares[v][0])
        frac = " / ".join(f"{statistics.fmean(al[i] for al in shares[v]) / a.k:.2f}" for i in layers)
        d = rows[v]["distance"]
        cost = statistics.fmean(rows[v]["cost"])
        out[v] = {"distance": statistics.fmean(d), "distance_sd": statistics.pstdev(d), "cost": cost}
        print(f"| {v} | {frac} | {out[v]['distance']:.2f} ± {out[v]['distance_sd']:.2f} | {cost:.2f} |")
    print(f"\n(the paper's own draws, around their mean: {out[reference]['distance']:.2f}, the noise floor)")
    return out


if __name__ == "__main__":
    main()
