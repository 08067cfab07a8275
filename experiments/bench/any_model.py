"""Growing models clgrow did not build: what it costs, as ratios measured in one process.

    python -m clgrow.experiments.bench.any_model            # a few minutes on 2 cores
    python -m clgrow.experiments.bench.any_model --quick    # fewer steps

* ``training``: samples/s of a plain PyTorch training loop on a module clgrow has traced and grown
  (its sites given biases and cohort buffers, every layer wider) over the same loop on an
  identical module grown by plain surgery (torch.cat of zeros), for Avalanche's SimpleMLP, a
  user's module and torchvision's resnet18, and of clgrow's own MLP and ResNet grown against the
  same builder at the grown widths. Target: >= 0.95 (nothing of clgrow runs in the module's forward).
* ``discovery``: on the test zoo, what our trace finds against ``torch.fx.symbolic_trace`` and,
  when ``torch-pruning`` is importable, its ``DependencyGraph`` (docs/models.md's decision).
* ``growth``: one growth step (SVoD + SWE, the defaults, K = 64) on torchvision's resnet18 at
  3x32x32, as a fraction of one training epoch on the same generated images. Target: <= 1.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from clgrow import grow, mlp, resnet
from clgrow.sites import as_growable

warnings.filterwarnings("ignore")


class _UserNet(nn.Module):
    """A user's module: functional ReLUs and a residual add."""

    def __init__(self, width: int = 256) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(784, width), nn.Linear(width, width), nn.Linear(width, width)
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.a(x.flatten(1)))
        return self.head(F.relu(self.c(F.relu(self.b(h)))) + h)


def _batches(shape: tuple[int, ...], n: int, batch: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *shape, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return [(x[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)]


def _epoch(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Seconds of one plain training epoch (Adam, cross-entropy)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    start = time.perf_counter()
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return time.perf_counter() - start


def _interleaved(a: nn.Module, b: nn.Module, batches: list, repeats: int) -> float:
    """Median over ``repeats`` of b's epoch time over a's, taken alternately (noise cancels)."""
    _epoch(a, batches[:2]), _epoch(b, batches[:2])  # warm-up
    ratios = []
    for _ in range(repeats):
        ta = _epoch(a, batches)
        tb = _epoch(b, batches)
        ratios.append(ta / tb)
    return statistics.median(ratios)


@torch.no_grad()
def _plain_widen(model: nn.Module, like: nn.Module) -> None:
    """Give ``model`` the shapes of ``like`` by plain surgery (zeros appended), no clgrow state."""
    for (_, mod), (_, ref) in zip(model.named_modules(), like.named_modules()):
        for pname, p in list(mod._parameters.items()):
            target = ref._parameters.get(pname)
            if p is None and target is not None:
                mod._parameters[pname] = nn.Parameter(torch.zeros_like(target))
            elif p is not None and target is not None and p.shape != target.shape:
                mod._parameters[pname] = nn.Parameter(target.detach().clone())
        for bname, buf in list(mod._buffers.items()):
            target = ref._buffers.get(bname)
            if buf is not None and target is not None and buf.shape != target.shape:
                mod._buffers[bname] = target.clone()
        for attr in ("in_features", "out_features", "in_channels", "out_channels", "num_features"):
            if hasattr(ref, attr):
                setattr(mod, attr, getattr(ref, attr))


def training(quick: bool) -> list[tuple[str, float]]:
    import avalanche.models as am
    import torchvision.models as tvm

    steps = 8 if quick else 48
    repeats = 3 if quick else 9
    cases: list[tuple[str, Callable[[], nn.Module], tuple[int, ...], int]] = [
        ("Avalanche SimpleMLP [1024, 1024]", lambda: am.SimpleMLP(10, 784, 1024, 2, drop_rate=0.0), (1, 28, 28), 256),
        ("user module (functional ReLU, residual)", _UserNet, (1, 28, 28), 128),
        ("torchvision resnet18, 3x32x32", lambda: tvm.resnet18(num_classes=10), (3, 32, 32), 16),
    ]
    rows = []
    for label, build, shape, batch in cases:
        batches = _batches(shape, steps * batch, batch)
        torch.manual_seed(0)
        grown = build()
        grow(grown, 16, [(x, y) for x, y in batches[:2]], "random", "uniform")
        plain = build()
        _plain_widen(plain, grown)
        rows.append((f"{label}: grown by clgrow / same shapes, plain", _interleaved(plain, grown, batches, repeats)))
    # clgrow's own models, grown, against the same builder at the grown widths
    own: list[tuple[str, Callable[[list[int] | None], nn.Module], tuple[int, ...], int]] = [
        ("clgrow mlp [1024, 1024]", lambda w: mlp(784, w or [1024, 1024], 10), (784,), 256),
        (
            "clgrow resnet nf=16, 3x32x32",
            lambda w: resnet((3, 32, 32), 10, nf=16, blocks=(2, 2), widths=w),
            (3, 32, 32),
            16,
        ),
    ]
    for label, make, shape, batch in own:
        batches = _batches(shape, steps * batch, batch)
        torch.manual_seed(0)
        grown = make(None)
        grow(grown, 64, [(x, y) for x, y in batches[:2]], "random", "uniform")
        plain = make(as_growable(grown).hidden_sizes)
        rows.append((f"{label}: grown / built at the grown widths", _interleaved(plain, grown, batches, repeats)))
    return rows


def growth(quick: bool) -> list[tuple[str, float]]:
    import torchvision.models as tvm

    n = 512 if quick else 2048
    batches = _batches((3, 32, 32), n, 64, seed=1)
    torch.manual_seed(0)
    model = tvm.resnet18(num_classes=10)
    _epoch(model, batches[:2])  # warm-up
    probe = copy.deepcopy(model)
    epoch = statistics.median(_epoch(copy.deepcopy(probe), batches) for _ in range(2))
    start = time.perf_counter()
    report = grow(model, 64, batches, new_task=True)
    step = time.perf_counter() - start
    sites = as_growable(model).num_hidden_layers
    return [
        (
            f"resnet18 growth step (SVoD + SWE, K=64, {sites} sites, {n} images) / one epoch "
            f"[distributor {report.seconds['distributor']:.1f}s, extender {report.seconds['extender']:.1f}s]",
            step / epoch,
        )
    ]


def discovery(quick: bool) -> list[tuple[str, float]]:
    """Sites and timings per zoo model (the ratio column: our trace's milliseconds)."""
    import torch.fx

    from clgrow.discovery import find_sites
    from tests.zoo import ZOO, zoo_data

    try:
        import torch_pruning as tp
    except ImportError:
        tp = None
    rows = []
    for name in sorted(ZOO):
        entry = ZOO[name]
        model = entry.build().eval()
        x = zoo_data(entry)[0][0]
        start = time.perf_counter()
        found = find_sites(model, x, 0)
        ours = (time.perf_counter() - start) * 1000
        try:
            torch.fx.symbolic_trace(model)
            fx = "traces"
        except Exception as err:
            fx = f"fails ({type(err).__name__})"
        dg = "not installed"
        if tp is not None:
            fn = (lambda m, inp: m(inp, 0)) if hasattr(model, "forward_single_task") else None
            try:
                graph = tp.DependencyGraph().build_dependency(model, example_inputs=x, forward_fn=fn)
                dg = f"{len(list(graph.get_all_groups(root_module_types=[nn.Conv2d, nn.Linear])))} groups"
            except Exception as err:
                dg = f"fails ({type(err).__name__})"
        rows.append(
            (f"ms  {name}: {len(found.sites)} sites, {len(found.refused)} named | fx {fx} | DepGraph {dg}", ours)
        )
    return rows


SECTIONS = {"training": training, "discovery": discovery, "growth": growth}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for section in args.sections:
        print(f"## {section}")
        for label, ratio in SECTIONS[section](args.quick):
            print(f"{ratio:6.3f}  {label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
