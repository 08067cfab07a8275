"""Benchmark suite: cost of growth and of the toolkit's machinery, as ratios measured in one run.

    python -m clgrow.experiments.bench.suite                 # everything (a few minutes on 2 cores)
    python -m clgrow.experiments.bench.suite --sections cost scaling

Sections (every figure is a ratio of two timings taken in the same process, so machine
speed cancels out; absolute times are not reported):

* ``cost``: growth step / one training epoch per extender and distributor, default and
  paper budgets;
* ``scaling``: the same ratio for SVoD + SWE while one factor varies (depth, width, K, input);
* ``memory``: peak extra memory of a growth step (fresh process each), SWE's coupling size,
  and the guard that refuses or subsamples;
* ``overhead``: Avalanche epoch with GrowPlugin attached but not growing / without it;
  Avalanche loop vs a plain PyTorch loop (samples per second);
* ``inactivity``: measuring inactivity / one evaluation pass, and Avalanche evaluation with
  the inactivity metric / without it;
* ``throughput``: whole-stream training samples/s, Avalanche's per-sample path and the batch
  path (:mod:`clgrow.strategies.fastdata`) against the strongest plain PyTorch loop, Naive and
  Replay, embedded and from disk (``--data-root`` with MNIST's files, else synthetic ones);
* ``eval``: Avalanche evaluation with the inactivity metric / a plain evaluation pass;
* ``cli``: seconds until ``clgrow --help``, ``list`` and argument errors answer;
* ``profile``: cProfile's top entries of a Naive run, per-sample path and batch path.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from clgrow import SWE, GrowthError, SVoD, distributors, extenders, grow, measure_inactivity, mlp
from clgrow.experiments.console import quiet_avalanche_deprecations
from clgrow.experiments.growth_demo import train_epoch as _epoch

warnings.filterwarnings("ignore")
quiet_avalanche_deprecations()


def _data(n: int, m: int, classes: int = 10, seed: int = 0) -> TensorDataset:
    """Random inputs with labels from a random linear teacher (learnable, any size)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, m, generator=g)
    y = (x @ torch.randn(m, classes, generator=g)).argmax(1)
    return TensorDataset(x, y)


def _median(fn: Callable[[], float], repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def _setup(layers: int, width: int, m: int, n: int = 2048, batch: int = 64, seed: int = 0):
    torch.manual_seed(seed)
    loader = DataLoader(_data(n, m, seed=seed), batch_size=batch, shuffle=True)
    model = mlp(m, [width] * layers, 10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    _epoch(model, loader, opt)  # warm-up, and non-trivial weights
    epoch = _median(lambda: _epoch(model, loader, opt), 3)
    return model, loader, epoch


def _grow_ratio(
    model: nn.Module, loader: DataLoader, epoch: float, k: int, ext: Any, dist: Any, repeats: int = 2
) -> dict[str, float]:
    times = []
    for r in range(repeats):
        m = copy.deepcopy(model)
        torch.manual_seed(r)
        rep = grow(m, k, loader, ext, dist)
        times.append(rep.seconds)
    return {key: statistics.median(t[key] for t in times) / epoch for key in ("distributor", "extender", "total")}


def section_cost(quick: bool) -> str:
    """Growth step / epoch per extender and distributor, default and paper budgets."""
    model, loader, epoch = _setup(3, 256, 784)
    k = 64
    rows = ["| method | budget | growth step / epoch |", "|---|---|---|"]
    paper_ext = {"swe": SWE.PAPER, "gradmax": dict(passes=1.0)}
    for name in sorted(extenders):
        for budget, kw in (("default", {}), ("paper", paper_ext.get(name))):
            if kw is None:
                continue
            r = _grow_ratio(model, loader, epoch, k, extenders[name](**kw), "uniform")
            rows.append(f"| extender `{name}` (uniform allocation) | {budget} | {r['extender']:.2f} |")
    for name in sorted(distributors):
        kws: list[tuple[str, Any]] = [("default", {})] + ([("paper", SVoD.PAPER)] if name == "svod" else [])
        for budget, kw in kws:
            r = _grow_ratio(model, loader, epoch, k, "random", distributors[name](**kw))
            rows.append(f"| distributor `{name}` | {budget} | {r['distributor']:.2f} |")
    for budget, ext, dist in (("default", SWE(), SVoD()), ("paper", SWE(**SWE.PAPER), SVoD(**SVoD.PAPER))):
        r = _grow_ratio(model, loader, epoch, k, ext, dist)
        rows.append(f"| **SVoD + SWE** | {budget} | **{r['total']:.2f}** |")
    head = (
        f"MLP 784-[256, 256, 256]-10, K = {k}, 2,048 samples in batches of 64 (one epoch = 32 batches); "
        "ratio = wall time of the growth step / median wall time of one training epoch (Adam)\n"
    )
    return head + "\n".join(rows)


def section_scaling(quick: bool) -> str:
    """SVoD + SWE growth step / epoch while one factor varies around depth 3, width 256, K 64, input 784."""
    base = dict(layers=3, width=256, k=64, m=784)
    grid = {"layers": [1, 3, 6], "width": [64, 256, 1024], "k": [16, 64, 256], "m": [64, 784, 3072]}
    rows = [
        "| varied | value | dense coupling MiB (largest layer; not used by the default) | SVoD / epoch | SWE / epoch | total / epoch | paper budget total / epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for factor, values in grid.items():
        for v in values:
            p = dict(base, **{factor: v})
            model, loader, epoch = _setup(p["layers"], p["width"], p["m"])
            d = _grow_ratio(model, loader, epoch, p["k"], SWE(on_oversize="subsample"), SVoD(), repeats=1)
            paper = (
                "—"
                if quick
                else f"{_grow_ratio(model, loader, epoch, p['k'], SWE(SWE.PAPER.replace(on_oversize='subsample')), SVoD(**SVoD.PAPER), repeats=1)['total']:.2f}"
            )
            per_layer = p["k"] / p["layers"]
            mib = (
                max(
                    SWE.coupling_bytes(int(per_layer + 1), p["width"], p["m"] if i == 0 else p["width"])
                    for i in range(p["layers"])
                )
                / 2**20
            )
            rows.append(
                f"| {factor} | {v} | {mib:.0f} | {d['distributor']:.2f} | {d['extender']:.2f} | "
                f"{d['total']:.2f} | {paper} |"
            )
    return (
        "One factor varies, the others stay at depth 3, width 256, K 64, input 784; default budgets; "
        "K spread evenly for the coupling estimate\n" + "\n".join(rows)
    )


_MEM_CHILD = r"""
import json, sys, torch, warnings
warnings.filterwarnings("ignore")
torch.set_num_threads(1)
from clgrow.experiments.bench.suite import _setup
from clgrow import grow, SWE, SVoD
def status(key):
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1]) / 1024
layers, width, m, k, swe_kwargs = json.loads(sys.argv[1])
model, loader, epoch = _setup(layers, width, m, n=512)
open("/proc/self/clear_refs", "w").write("5")  # Linux: reset the peak resident set (VmHWM) to now
base = status("VmRSS")
rep = grow(model, k, loader, SWE(**swe_kwargs), "fixed")
peak = status("VmHWM")
params = sum(p.numel() for p in model.parameters()) * 4
print(json.dumps({"peak_extra_mib": peak - base, "coupling_mib": rep.info["extender"][f"layer{layers-1}"]["coupling_mib"], "model_mib": params / 2**20}))
"""


def section_memory(quick: bool) -> str:
    """Peak extra RSS of an SWE growth step (fresh process per row) against the coupling estimate."""
    rows = [
        "| SWE | width | input | K (one layer) | model MiB | coupling state MiB (as reported) | measured peak extra MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    configs = [(1, 256, 784, 64), (1, 1024, 784, 128), (1, 1024, 3072, 128)]
    if not quick:
        configs.append((1, 2048, 3072, 128))
    kinds = [
        ("default (factored)", {}),
        ("dense, 0.05 pass", {"coupling": "dense", "schedule": "sequential", "passes": 0.05, "trust": None}),
    ]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    for label, kwargs in kinds:
        for layers, width, m, k in configs:
            out = subprocess.run(
                [sys.executable, "-c", _MEM_CHILD, json.dumps([layers, width, m, k, kwargs])],
                capture_output=True,
                text=True,
                env=env,
            )
            if out.returncode != 0:
                last = out.stderr.strip().splitlines()[-1]
                verdict = "refused by the default 2 GiB guard" if "max_coupling_bytes" in last else f"failed: {last}"
                need = SWE.coupling_bytes(k, width, m) / 2**20
                rows.append(f"| {label} | {width} | {m} | {k} | — | {need:.0f} (needed) | {verdict} |")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(
                f"| {label} | {width} | {m} | {k} | {r['model_mib']:.1f} | {r['coupling_mib']:.0f} | "
                f"{r['peak_extra_mib']:.0f} |"
            )
    # The guard: refuse, or subsample the partners, before anything is allocated.
    model, loader, _ = _setup(1, 1024, 3072, n=256)
    guard = SWE(coupling="dense", trust=None, max_coupling_bytes=512 * 2**20)
    try:
        grow(model, 256, loader, guard, "fixed")
        refused = "not refused"
    except GrowthError as err:
        refused = str(err)
    sub = grow(
        copy.deepcopy(model),
        256,
        loader,
        SWE(coupling="dense", trust=None, max_coupling_bytes=512 * 2**20, on_oversize="subsample"),
        "fixed",
    )
    info = sub.info["extender"]["layer0"]
    return (
        "SWE on one hidden layer (the largest coupling case), the default and the dense coupling; peak extra = peak "
        "resident set during the step (Linux VmHWM, reset before the step) minus the resident set before it; "
        "coupling state: dense = C with its gradient and Adam's two moments, factored = per-row moments\n"
        + "\n".join(rows)
        + f"\n\nDense coupling guard at 512 MiB, K = 256 on a 3072-1024 layer (coupling would need "
        f"{SWE.coupling_bytes(256, 1024, 3072) / 2**30:.1f} GiB):\n\n"
        f"- `on_oversize='error'` (default): `GrowthError: {refused}`\n"
        f"- `on_oversize='subsample'`: each new unit couples with {info['partners']} of 1024 old units "
        f"({info['coupling_mib']:.0f} MiB)"
    )


def section_overhead(quick: bool) -> str:
    """Plugin overhead and Avalanche vs plain PyTorch, same model and data."""
    from avalanche.training.plugins import EvaluationPlugin

    from clgrow.experiments.benchmarks import make_benchmark
    from clgrow.strategies import GrowPlugin, build_strategy

    bm = make_benchmark("split-mnist-5k", 1, seed=0)
    exp = bm.scenario.train_stream[0]
    n = len(exp.dataset)
    epochs = 2 if quick else 4

    def avalanche_time(with_plugin: bool) -> float:
        torch.manual_seed(0)
        model = mlp(784, [256, 256], 10)
        plugins = [GrowPlugin(grow_from_experience=10**6)] if with_plugin else []
        s = build_strategy(
            "naive",
            model,
            None,
            plugins=plugins,
            train_mb_size=64,
            train_epochs=epochs,
            evaluator=EvaluationPlugin(loggers=[]),
        )
        t = time.perf_counter()
        s.train(exp)
        return (time.perf_counter() - t) / epochs

    xs = torch.stack([exp.dataset[i][0] for i in range(n)])
    ys = torch.tensor([exp.dataset[i][1] for i in range(n)])
    plain_loader = DataLoader(TensorDataset(xs, ys), batch_size=64, shuffle=True)

    def plain_time() -> float:
        torch.manual_seed(0)
        model = mlp(784, [256, 256], 10)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        return statistics.mean(_epoch(model, plain_loader, opt) for _ in range(epochs))

    avalanche_time(False)  # warm-up (first-call costs of Avalanche and torch)
    pairs = [(avalanche_time(True), avalanche_time(False)) for _ in range(2 if quick else 5)]
    with_p = statistics.median(a for a, _ in pairs)
    without = statistics.median(b for _, b in pairs)
    plain = statistics.median(plain_time() for _ in range(3))
    return (
        "Naive on the 4,000 MNIST-5k training images (one experience, all classes), MLP [256, 256], batch 64; "
        "medians of 5 alternating runs after a warm-up\n"
        "| comparison | ratio |\n|---|---|\n"
        f"| epoch with GrowPlugin attached (not growing) / without | {with_p / without:.3f} |\n"
        f"| Avalanche samples/s / plain PyTorch loop samples/s | {plain / without:.2f} |"
    )


def section_inactivity(quick: bool) -> str:
    """Inactivity measurement cost relative to one evaluation pass."""
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training.plugins import EvaluationPlugin

    from clgrow.experiments.benchmarks import make_benchmark
    from clgrow.strategies import build_strategy, inactivity_metrics

    model, loader, _ = _setup(3, 256, 784, n=4096, batch=512)

    @torch.no_grad()
    def eval_pass() -> float:
        t = time.perf_counter()
        model.eval()
        for x, _ in loader:
            model(x)
        return time.perf_counter() - t

    def measure() -> float:
        t = time.perf_counter()
        measure_inactivity(model, loader)
        return time.perf_counter() - t

    ratio = _median(measure, 5) / _median(eval_pass, 5)
    bm = make_benchmark("split-mnist-5k", 5, seed=0)

    def avalanche_eval(with_metric: bool) -> float:
        m = mlp(784, [256, 256, 256], 10)
        metrics = [accuracy_metrics(stream=True)] + (inactivity_metrics() if with_metric else [])
        s = build_strategy("naive", m, None, evaluator=EvaluationPlugin(*metrics, loggers=[]), eval_mb_size=512)
        t = time.perf_counter()
        s.eval(bm.scenario.test_stream)
        return time.perf_counter() - t

    pairs = [(avalanche_eval(True), avalanche_eval(False)) for _ in range(5)]
    r2 = statistics.median(a for a, _ in pairs) / statistics.median(b for _, b in pairs)
    return (
        "MLP 784-[256, 256, 256]-10\n| comparison | ratio |\n|---|---|\n"
        f"| `measure_inactivity` on 4,096 samples / one plain evaluation pass over them | {ratio:.2f} |\n"
        f"| Avalanche test-stream evaluation with the inactivity metric / without (1,000 images) | {r2:.2f} |"
    )


def _plain_train(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, epochs: int, opt: torch.optim.Optimizer
) -> float:
    """The strongest plain loop: a shuffled permutation per epoch, each batch gathered by one
    ``index_select`` (4-15x faster than ``x[idx]`` on CPU, same values)."""
    t = time.perf_counter()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y))
        for i in range(0, len(y), batch):
            idx = perm[i : i + batch]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x.index_select(0, idx)), y.index_select(0, idx)).backward()
            opt.step()
    return time.perf_counter() - t


def _plain_rate(bm: Any, tensors: list[tuple[torch.Tensor, torch.Tensor]], batch: int, epochs: int) -> float:
    """Samples/s of :func:`_plain_train` over every experience's tensors, for the throughput
    section's MLP 784-[256]-10 with Adam 1e-3 (seeded like the Avalanche runs it is compared with)."""
    torch.manual_seed(0)
    model = mlp(bm.in_features, [256], bm.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    seconds = sum(_plain_train(model, x, y, batch, epochs, opt) for x, y in tensors)
    return sum(len(y) for _, y in tensors) * epochs / seconds


def _stream_tensors(stream: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    from clgrow.strategies.fastdata import resolve_dataset

    out = []
    for exp in stream:
        r = resolve_dataset(exp.dataset)
        assert r is not None, "the embedded benchmarks are built on TensorSamples"
        x, y, _ = r.gather(torch.arange(len(r)))
        out.append((x, y))
    return out


def _avalanche_train(bm: Any, strategy: str, fast: bool, epochs: int, batch: int = 128) -> tuple[float, int]:
    """Seconds spent in training epochs over the whole stream, and samples the model saw (replay included)."""
    from avalanche.core import SupervisedPlugin
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training.plugins import EvaluationPlugin

    from clgrow.strategies import LeanEvaluationPlugin, build_optimizer, build_strategy

    class Clock(SupervisedPlugin):
        def __init__(self) -> None:
            super().__init__()
            self.seconds, self.samples, self._t = 0.0, 0, 0.0

        def before_training_epoch(self, strategy: Any, **kw: Any) -> None:
            self._t = time.perf_counter()

        def after_training_epoch(self, strategy: Any, **kw: Any) -> None:
            self.seconds += time.perf_counter() - self._t

        def after_training_iteration(self, strategy: Any, **kw: Any) -> None:
            self.samples += len(strategy.mb_y)

    torch.manual_seed(0)
    model = mlp(bm.in_features, [256], bm.num_classes)
    clock = Clock()
    kw: dict[str, Any] = {"mem_size": 500} if strategy == "replay" else {}
    s = build_strategy(
        strategy,
        model,
        None,
        optimizer=build_optimizer("adam", model, 1e-3),
        train_mb_size=batch,
        train_epochs=epochs,
        evaluator=(LeanEvaluationPlugin if fast else EvaluationPlugin)(accuracy_metrics(stream=True), loggers=[]),
        plugins=[clock],
        fast_data=fast,
        **kw,
    )
    for exp in bm.scenario.train_stream:
        s.train(exp)
    return clock.seconds, clock.samples


def _synthetic_mnist_root() -> str:
    """60,000 + 10,000 images in MNIST's idx format (mnist-5k's images tiled with noise): the on-disk
    path's cost does not depend on what the pixels show."""
    import struct
    import tempfile
    from pathlib import Path

    import numpy as np

    from clgrow.experiments.embedded import load_embedded

    d = load_embedded("mnist-5k")
    x = torch.cat([d.x_train, d.x_test]).mul(255).round().to(torch.uint8).numpy().reshape(-1, 28, 28)
    y = torch.cat([d.y_train, d.y_test]).numpy().astype(np.uint8)
    rng = np.random.default_rng(0)
    root = Path(tempfile.mkdtemp(prefix="clgrow-bench-")) / "MNIST" / "raw"
    root.mkdir(parents=True)
    for prefix, n in (("train", 60000), ("t10k", 10000)):
        idx = rng.integers(0, len(y), n)
        imgs = np.clip(x[idx].astype(np.int16) + rng.integers(-8, 9, (n, 28, 28)), 0, 255).astype(np.uint8)
        for kind, arr in (("images-idx3", imgs), ("labels-idx1", y[idx])):
            header = struct.pack(">HBB", 0, 8, arr.ndim) + b"".join(struct.pack(">I", v) for v in arr.shape)
            (root / f"{prefix}-{kind}-ubyte").write_bytes(header + arr.tobytes())
    return str(root.parent.parent)


def section_throughput(quick: bool, data_root: str | None = None) -> str:
    """Whole-stream training throughput against the strongest plain PyTorch loop, per sample seen."""
    from pathlib import Path

    from clgrow.experiments.benchmarks import expected_files, make_benchmark

    rows = [
        "| data | strategy | epochs/exp | plain loop samples/s | Avalanche per-sample path / plain | "
        "**batch path / plain** | batch path / per-sample path |",
        "|---|---|---|---|---|---|---|",
    ]
    real = data_root is not None and all(p.is_file() for p in expected_files("split-mnist", Path(data_root)))
    disk_root = data_root if real else _synthetic_mnist_root()
    cases = [
        ("split-mnist-5k (embedded)", make_benchmark("split-mnist-5k", 5, seed=0), 2 if quick else 10),
        (
            f"split-mnist from disk ({'your files' if real else 'synthetic idx files, 60,000 images'})",
            make_benchmark("split-mnist", 5, seed=0, data_root=disk_root),
            1,
        ),
    ]
    for label, bm, epochs in cases:
        tensors = _stream_tensors(bm.scenario.train_stream)
        for strategy in ("naive", "replay"):
            # the plain loop does the same work per step: replay doubles each batch (current + buffer)
            batch = 128 * (2 if strategy == "replay" else 1)
            _avalanche_train(bm, strategy, True, 1)  # warm-up
            plain_before = _plain_rate(bm, tensors, batch, epochs)
            slow_s, slow_n = _avalanche_train(bm, strategy, False, epochs)
            fast_s, fast_n = _avalanche_train(bm, strategy, True, epochs)
            # the faster of a plain run before and one after: drift on this machine never flatters us
            plain = max(plain_before, _plain_rate(bm, tensors, batch, epochs))
            rows.append(
                f"| {label} | {strategy} | {epochs} | {plain:,.0f} | {slow_n / slow_s / plain:.2f} | "
                f"**{fast_n / fast_s / plain:.2f}** | {(fast_n / fast_s) / (slow_n / slow_s):.1f}x |"
            )
        # what `clgrow run` reports: the runner with every metric, timer and guard attached
        from clgrow.experiments.config import RunConfig
        from clgrow.experiments.runner import run

        cfg = RunConfig(
            benchmark=bm.name,
            strategy="naive",
            growth="none",
            hidden_sizes=[256],
            train_mb_size=128,
            train_epochs=epochs,
            data_root=None if bm.name.endswith("5k") else disk_root,
            lr=1e-3,
        )
        # three runs, each paired with the faster of a plain loop before and after it: the median
        # ratio and the range (one sub-second run on a 2-core machine swings by ±0.05)
        n = sum(len(y) for _, y in tensors) * epochs
        ratios, plains = [], []
        for _ in range(3):
            plain_before = _plain_rate(bm, tensors, 128, epochs)
            summary = run(cfg.resolve())
            plains.append(max(plain_before, _plain_rate(bm, tensors, 128, epochs)))
            ratios.append(n / summary.train_seconds / plains[-1])
        ratios.sort()
        rows.append(
            f"| {label} | naive, `clgrow run` (all metrics; `train_seconds`; median of 3 [range]) | {epochs} | "
            f"{statistics.median(plains):,.0f} | — | **{ratios[1]:.2f}** [{ratios[0]:.2f}–{ratios[2]:.2f}] | — |"
        )
    return (
        "MLP 784-[256]-10, batch 128 (replay: + 128 buffer samples per step, mem_size 500), Adam 1e-3, "
        "5 experiences; samples/s = samples the model trained on / seconds inside training epochs; the "
        "plain loop indexes the same tensors by a shuffled permutation (replay: batches of 256), the "
        "faster of one run before and one after; per-sample path: Avalanche's loaders and "
        "EvaluationPlugin; batch path: BatchDataPlugin and LeanEvaluationPlugin\n" + "\n".join(rows)
    )


def section_conv(quick: bool) -> str:
    """`clgrow run` with a convolutional model against a plain PyTorch loop training the same
    CNN on the same tensors (the convolutional throughput goal), per sample seen."""
    from clgrow.experiments.benchmarks import make_benchmark
    from clgrow.experiments.config import RunConfig
    from clgrow.experiments.runner import run
    from clgrow.models import cnn

    bm = make_benchmark("split-mnist-5k", 5, seed=0)
    tensors = _stream_tensors(bm.scenario.train_stream)
    epochs, batch = (1 if quick else 3), 32
    rows = ["| model | epochs/exp | plain loop samples/s | **`clgrow run` / plain** |", "|---|---|---|---|"]
    cases: list[tuple[list[int | str], list[int]]] = [
        ([16, "M", 32, "M"], [64, 64]),
        ([32, 32, "M", 64, 64, "M"], [100, 100]),
    ]
    for channels, hidden in cases:

        def plain_rate(channels: list = channels, hidden: list = hidden) -> float:
            torch.manual_seed(0)
            model = cnn((1, 28, 28), channels, hidden, 10)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            seconds = sum(_plain_train(model, x, y, batch, epochs, opt) for x, y in tensors)
            return sum(len(y) for _, y in tensors) * epochs / seconds

        cfg = RunConfig(
            benchmark="split-mnist-5k",
            strategy="naive",
            growth="none",
            model="cnn",
            channels=list(channels),
            hidden_sizes=list(hidden),
            train_mb_size=batch,
            train_epochs=epochs,
            lr=1e-3,
        )
        before = plain_rate()
        summary = run(cfg.resolve())
        plain = max(before, plain_rate())  # the faster of a plain run before and one after
        n = sum(len(y) for _, y in tensors) * epochs
        label = " ".join(map(str, channels)) + " + " + str(hidden)
        rows.append(f"| CNN {label} | {epochs} | {plain:,.0f} | **{n / summary.train_seconds / plain:.2f}** |")
    return (
        "split-mnist-5k as 1x28x28 images, batch 32, Adam 1e-3, Naive, 5 experiences; `clgrow run` with every "
        "metric attached (`train_seconds`), the plain loop on the same tensors by a shuffled permutation, the "
        "faster of one run before and one after\n" + "\n".join(rows)
    )


def section_eval(quick: bool) -> str:
    """Avalanche evaluation with the inactivity metric against a plain evaluation pass, and where
    the difference goes (each layer of the evaluation added in turn, measured in the same rounds)."""
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training.plugins import EvaluationPlugin

    from clgrow.experiments.benchmarks import make_benchmark
    from clgrow.strategies import LeanEvaluationPlugin, build_strategy, inactivity_metrics
    from clgrow.strategies.fastdata import fast_loader

    rows = [
        "| test data | model | per-sample path, accuracy + inactivity / plain | **batch path, accuracy + "
        "inactivity / plain** | batch path, accuracy only | batch path, no metric | our loader + forward only |",
        "|---|---|---|---|---|---|---|",
    ]
    reps = 3 if quick else 7
    disk = make_benchmark("split-mnist", 5, seed=0, data_root=_synthetic_mnist_root())
    cases = [
        ("split-mnist-5k: 1,000 images", make_benchmark("split-mnist-5k", 5, seed=0), [256, 256, 256]),
        ("split-mnist from disk (synthetic): 10,000 images", disk, [256, 256, 256]),
        ("split-mnist from disk (synthetic): 10,000 images", disk, [1024, 1024, 1024]),
    ]
    for label, bm, hidden in cases:
        tensors = _stream_tensors(bm.scenario.test_stream)
        model = mlp(784, hidden, 10)

        def avalanche_eval(fast: bool, metrics: list[Any]) -> float:
            plugin = (LeanEvaluationPlugin if fast else EvaluationPlugin)(*metrics, loggers=[])
            s = build_strategy("naive", model, None, evaluator=plugin, eval_mb_size=512, fast_data=fast)
            t = time.perf_counter()
            s.eval(bm.scenario.test_stream)
            return time.perf_counter() - t

        def full() -> list[Any]:
            return [accuracy_metrics(stream=True), *inactivity_metrics()]

        @torch.no_grad()
        def plain_eval() -> float:
            t = time.perf_counter()
            model.eval()
            hits = 0
            for x, y in tensors:
                for i in range(0, len(y), 512):
                    hits += int((model(x[i : i + 512]).argmax(1) == y[i : i + 512]).sum())
            return time.perf_counter() - t

        # the batch path's loaders as evaluation builds them, iterated with nothing but the forward pass
        probe = build_strategy("naive", model, None, eval_mb_size=512)
        loaders = []
        for exp in bm.scenario.test_stream:
            probe.experience = exp
            probe.eval_dataset_adaptation()
            probe.make_eval_dataloader()
            loader = fast_loader(probe.dataloader)
            assert loader is not None, "evaluation of the embedded benchmarks takes the batch path"
            loaders.append(loader)

        @torch.no_grad()
        def loader_forward() -> float:
            t = time.perf_counter()
            model.eval()
            for loader in loaders:
                for x, _, _ in loader:
                    model(x)
            return time.perf_counter() - t

        avalanche_eval(True, full())
        # alternating, so that the machine's drift falls on every variant alike
        runs = [
            (
                plain_eval(),
                avalanche_eval(False, full()),
                avalanche_eval(True, full()),
                avalanche_eval(True, [accuracy_metrics(stream=True)]),
                avalanche_eval(True, []),
                loader_forward(),
            )
            for _ in range(reps)
        ]
        slow, fast, acc, none, bare = (statistics.median(r[k] / r[0] for r in runs) for k in range(1, 6))
        rows.append(
            f"| {label} | 784-{hidden}-10 | {slow:.2f} | **{fast:.2f}** | {acc:.2f} | {none:.2f} | {bare:.2f} |"
        )
    return (
        f"Ratios to a plain pass (forward, argmax and hit count over float tensors already in memory); test "
        f"stream in 5 experiences, batch 512; each ratio the median over {reps} rounds of its ratio within the "
        f"round (variants alternate)\n" + "\n".join(rows)
    )


def section_cli(quick: bool) -> str:
    """Wall time of commands that should answer at once (fresh process each, medians of 3)."""
    import shutil

    exe = shutil.which("clgrow") or os.path.join(os.path.dirname(sys.executable), "clgrow")
    cmds = [
        ["--help"],
        ["list"],
        ["plot", "/nonexistent"],
        ["compare", "missing.toml", "--out", "/tmp/x"],
        ["compare", "--workers", "x"],
        ["run", "--benchmark", "nope", "--out", "/tmp/x"],
        ["run", "--help"],
        ["run", "--lr", "-1", "--out", "/tmp/x"],
        ["run", "--swe-passes", "-1", "--out", "/tmp/x"],
        ["compare", "experiments/configs/quick.toml", "--out", "/tmp/x", "--check"],
    ]

    def once(cmd: list[str]) -> float:
        t = time.perf_counter()
        subprocess.run([exe, *cmd], capture_output=True)
        return time.perf_counter() - t

    torch_s = _median(lambda: _once_py("import torch"), 3)
    rows = ["| command | seconds |", "|---|---|"] + [
        f"| `clgrow {' '.join(c)}` | {_median(lambda: once(c), 3):.2f} |" for c in cmds
    ]
    return f"For scale: `python -c 'import torch'` takes {torch_s:.2f} s here.\n" + "\n".join(rows)


def _once_py(code: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], capture_output=True)
    return time.perf_counter() - t


def section_profile(quick: bool) -> str:
    """Where a Naive run's training time goes, per-sample path and batch path (cProfile, top entries)."""
    import cProfile
    import io
    import pstats

    from clgrow.experiments.benchmarks import make_benchmark

    bm = make_benchmark("split-mnist-5k", 5, seed=0)
    out = []
    for fast in (False, True):
        pr = cProfile.Profile()
        pr.enable()
        _avalanche_train(bm, "naive", fast, 2)
        pr.disable()
        buf = io.StringIO()
        pstats.Stats(pr, stream=buf).sort_stats("cumulative").print_stats(
            r"avalanche|clgrow|torch/optim|torch/utils/data", 12
        )
        lines = [
            ln for ln in buf.getvalue().splitlines() if ln.strip() and (ln.lstrip()[0].isdigit() or "ncalls" in ln)
        ]
        out.append(f"{'batch' if fast else 'per-sample'} path:\n```\n" + "\n".join(lines[:14]) + "\n```")
    # evaluation: what is left besides the forward passes (own time of each function)
    from avalanche.evaluation.metrics import accuracy_metrics

    from clgrow.strategies import LeanEvaluationPlugin, build_strategy, inactivity_metrics

    test = make_benchmark("split-mnist", 5, seed=0, data_root=_synthetic_mnist_root()).scenario.test_stream
    model = mlp(784, [256, 256, 256], 10)
    s = build_strategy(
        "naive",
        model,
        None,
        eval_mb_size=512,
        evaluator=LeanEvaluationPlugin(accuracy_metrics(stream=True), *inactivity_metrics(), loggers=[]),
    )
    s.eval(test)  # warm-up: the resolutions are made once
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(5):
        s.eval(test)
    pr.disable()
    buf = io.StringIO()
    pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(14)
    lines = [ln for ln in buf.getvalue().splitlines() if ln.strip() and (ln.lstrip()[0].isdigit() or "ncalls" in ln)]
    out.append(
        "evaluation, batch path with accuracy and inactivity, 5 x 10,000 synthetic MNIST test images "
        "(own time):\n```\n" + "\n".join(lines[:16]) + "\n```"
    )
    return "\n\n".join(out)


SECTIONS: dict[str, Callable[..., str]] = {
    "cost": section_cost,
    "scaling": section_scaling,
    "memory": section_memory,
    "overhead": section_overhead,
    "inactivity": section_inactivity,
    "throughput": section_throughput,
    "conv": section_conv,
    "eval": section_eval,
    "cli": section_cli,
    "profile": section_profile,
}


def main(argv: Sequence[str] | None = None) -> None:
    """Run the chosen sections and print Markdown."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    p.add_argument("--quick", action="store_true", help="fewer repeats and configurations")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument(
        "--data-root",
        default=None,
        help="real MNIST files for the throughput section (default: synthetic files in MNIST's format)",
    )
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPU(s)\n")
    for name in a.sections:
        t = time.perf_counter()
        print(f"## {name}\n")
        print(SECTIONS[name](a.quick, a.data_root) if name == "throughput" else SECTIONS[name](a.quick))
        print(f"\n(section took {time.perf_counter() - t:.0f} s)\n", flush=True)


if __name__ == "__main__":
    main()
