"""Run one configuration end to end: benchmark, model, strategy, growth, metrics, summary."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics
from avalanche.training.determinism.rng_manager import RNGManager

import clgrow
from clgrow.errors import ConfigError, GrowthError
from clgrow.experiments.benchmarks import BenchmarkInfo, make_benchmark
from clgrow.experiments.catalog import IMAGE_SHAPES
from clgrow.experiments.config import RunConfig, RunPlan
from clgrow.experiments.device import resolve_device
from clgrow.experiments.errors import RunDiverged
from clgrow.experiments.loggers import close_loggers, make_loggers
from clgrow.experiments.models import is_external
from clgrow.experiments.preflight import preflight
from clgrow.strategies import (
    GrowPlugin,
    LeanEvaluationPlugin,
    ResultsWriter,
    RunSummary,
    build_optimizer,
    build_strategy,
    growth_metrics,
    inactivity_metrics,
)
from clgrow.strategies.compute import ComputePlugin
from clgrow.strategies.declared import traits
from clgrow.strategies.results import atomic_write_text
from clgrow.strategies.schedule import over_budget

__all__ = ["run", "prepare", "build_model", "summarize", "library_versions"]


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a result depends on."""
    import avalanche
    import numpy

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "avalanche": avalanche.__version__,
        "numpy": numpy.__version__,
        "clgrow": clgrow.__version__,
    }


def build_model(cfg: RunConfig, bm: BenchmarkInfo, hidden_sizes: list[int] | None = None) -> torch.nn.Module:
    """The run's model: clgrow's own (with one head per task given task labels, a small conv
    backbone for an MLP on CIFAR), Avalanche's or the user's by name, or Avalanche's PNN for
    strategy ``pnn``. ``hidden_sizes``: every site's width (site order; default the initial ones)."""
    from clgrow.experiments.models import load_model, own_model

    head = bm.head_size if bm.task_labels else bm.num_classes
    if is_external(cfg.model):  # Avalanche's or the user's: it grows in place at its traced sites
        fed = bm.scenario.train_stream[0].dataset[0][0]  # a sample as the run feeds it (flat, or an image)
        return load_model(cfg.model, cfg.model_args, head, fed.numel())
    sizes = list(hidden_sizes or cfg.site_sizes())
    if traits(cfg.strategy).own_model:  # Avalanche's PNN, the one strategy that brings its own model
        from avalanche.models import PNN

        if bm.backbone is not None or cfg.model != "mlp":
            raise ConfigError(
                f"strategy 'pnn': Avalanche's PNN is an MLP column per task; it takes no convolutional "
                f"model or backbone (model {cfg.model!r}, benchmark {cfg.benchmark!r})"
            )
        return PNN(num_layers=len(sizes), in_features=bm.in_features, hidden_features_per_column=sizes[0])
    backbone = bm.backbone() if bm.backbone is not None and cfg.model == "mlp" else None
    shape = IMAGE_SHAPES.get(cfg.benchmark)
    return own_model(cfg, sizes, head, bm.in_features, shape, backbone, task_heads=bm.task_labels)


class _Timer(SupervisedPlugin):
    """Wall-clock time spent in training epochs, and a progress callback per iteration."""

    def __init__(self, progress: Any = None) -> None:
        super().__init__()
        self.train_seconds = 0.0
        self.epoch_seconds: list[float] = []
        self._start = 0.0
        self.progress = progress

    def before_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        self._start = time.perf_counter()

    def after_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        dt = time.perf_counter() - self._start
        self.train_seconds += dt
        self.epoch_seconds.append(dt)

    def after_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.update(1)


class _FiniteLoss(SupervisedPlugin):
    """Stop a run whose loss is no longer finite, naming where (no summary is written).

    The epoch's losses are summed in float64 on the loss's device and the sum is read once per
    epoch: a per-iteration read would synchronise an accelerator at every step, and one addition
    costs a third of a per-iteration finiteness test. A sum is finite exactly when every term is
    (float32 losses cannot overflow a float64 sum). Growth and evaluation only happen between
    epochs, so neither ever sees a diverged model.
    """

    def __init__(self) -> None:
        super().__init__()
        self._sum: torch.Tensor | None = None

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        loss = strategy.loss
        if isinstance(loss, torch.Tensor):
            # one addition per step: float32 + float64 promotes in the same op
            self._sum = loss.detach().double() if self._sum is None else self._sum + loss.detach()

    def after_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        total, self._sum = self._sum, None
        if total is not None and not bool(torch.isfinite(total).all()):
            c = strategy.clock
            raise RunDiverged(
                f"the training loss became non-finite at experience {c.train_exp_counter}, epoch {c.train_exp_epochs}; "
                "no summary was written (a lower learning rate or a smaller regularisation weight usually helps)"
            )


def summarize(
    cfg: RunConfig,
    strategy: Any,
    writer: ResultsWriter,
    timer: _Timer,
    task_labels: list[int],
    epochs: int | None = None,
) -> RunSummary:
    """The run's :class:`RunSummary` (written to ``summary.json``)."""
    summary = RunSummary.collect(
        strategy,
        writer,
        task_labels=task_labels,
        benchmark=cfg.benchmark,
        strategy_name=cfg.strategy,
        growth=cfg.growth_label,
        seed=cfg.seed,
        train_seconds=timer.train_seconds,
        epoch_seconds=timer.epoch_seconds,
        versions=library_versions(),
        config=cfg.to_dict(),
        device=str(strategy.device),
        plasticity=cfg.plasticity,
        prune=cfg.prune,
    )
    summary.train_epochs = cfg.train_epochs if epochs is None else epochs
    return summary


def _line(i: int, s: RunSummary) -> str:
    def f(v: Any) -> str:
        return "  — " if v is None else f"{v:.3f}"

    return (
        f"exp {i}: acc {f(s.stream_accuracy[i])}  forgetting {f(s.forgetting[i])}  "
        f"dead {f(s.dead_fraction[i])}  dormant {f(s.dormant_fraction[i])}  "
        f"new dead {f(s.new_dead_fraction[i])}  new dormant {f(s.new_dormant_fraction[i])}  "
        f"sizes {s.hidden_sizes[i]}"
        + (f"  reset {s.units_reset[i]}" if s.units_reset else "")
        + (
            f"  growth disruption {f(s.growth_disruption[i])}"
            if i < len(s.growth_disruption) and s.growth_disruption[i] is not None
            else ""
        )
    )


def matched_epochs(reference: RunSummary, model: torch.nn.Module, bm: BenchmarkInfo) -> int:
    """Epochs per experience for ``model`` to spend, in training, the multiply-adds ``reference``
    spent in training and growth: it trains on the same samples per epoch (same stream, same
    buffer), at ``3·F − in₀·out₀`` per sample (:mod:`clgrow.measure.compute`); at least one epoch."""
    if not reference.compute or not reference.compute.get("train_samples"):
        raise ConfigError("match_compute: the reference run has no compute record (run it again with this version)")
    budget = reference.compute["train_macs"] + reference.compute["growth_macs"]
    epochs_ref = len(reference.train_loss[0]) if reference.train_loss and reference.train_loss[0] else 1
    per_epoch = reference.compute["train_samples"] / (epochs_ref * max(1, len(reference.train_loss)))
    from clgrow.sites import as_growable

    x = next(iter(bm.scenario.train_stream)).dataset[0][0].unsqueeze(0)
    forward, first = as_growable(model, x).macs_per_sample(x)
    per_sample = 3 * forward - first
    return max(1, round(budget / (per_epoch * len(reference.train_loss) * per_sample)))


def prepare(
    plan: RunPlan, hidden_sizes: list[int] | None = None
) -> tuple[BenchmarkInfo, torch.nn.Module, torch.device, Any]:
    """What a run builds before it trains, and what ``clgrow run --check`` builds to check it: the
    benchmark, the model (seeded, on its device) and its traced sites, checked on the first batch
    the run feeds (:func:`clgrow.experiments.preflight.preflight`). Returns
    ``(benchmark, model, device, sites or None)``."""
    cfg = plan.config
    bm = make_benchmark(cfg.benchmark, cfg.n_experiences, cfg.class_order_seed, cfg.task_labels, cfg.data_root)
    RNGManager.set_random_seeds(cfg.seed)
    try:
        model = build_model(cfg, bm, hidden_sizes)
    except (RuntimeError, MemoryError) as err:  # torch's allocator: a width this machine cannot hold
        if "alloc" not in str(err).lower() and not isinstance(err, MemoryError):
            raise
        from clgrow.experiments.capacity import _widths_field

        raise ConfigError(
            f"{_widths_field(cfg)}: layer widths {list(hidden_sizes or cfg.site_sizes())} cannot be allocated on this "
            f"machine ({str(err).splitlines()[0][:120]})"
        ) from None
    if cfg.init_from is not None:
        _load_saved(cfg.init_from, model)
    device = resolve_device(cfg.device)
    model.to(device)
    return bm, model, device, preflight(plan, bm, model, device)


def _load_saved(path: str, model: torch.nn.Module) -> None:
    """Give ``model`` the widths and weights of the grown model saved at ``path`` (``init_from``);
    refused, naming the file and why, when it is not such a checkpoint or does not fit the model."""
    from clgrow.checkpoint import load_grown

    try:
        load_grown(model, Path(path).expanduser(), map_location="cpu")
    except GrowthError as err:
        raise ConfigError(f"init_from: {path}: {err}") from None
    except Exception as err:  # not a torch file, or one torch refuses to unpickle safely
        raise ConfigError(
            f"init_from: {path} could not be read as a saved model ({type(err).__name__}: {str(err).splitlines()[0][:160]})"
        ) from None


def run(
    plan: RunPlan,
    out_dir: str | Path | None = None,
    *,
    hidden_sizes: list[int] | None = None,
    reference: RunSummary | None = None,
    split: list[list[int]] | None = None,
    verbose: bool = False,
    progress: bool = False,
) -> RunSummary:
    """Run ``plan``; write ``summary.json``, ``metrics.csv``/``metrics.json`` and figures to ``out_dir``.

    ``plan`` is a configuration validated and resolved once (:meth:`RunConfig.resolve`): nothing
    here parses or checks a setting again. ``hidden_sizes`` overrides the initial widths (used for
    fixed-final baselines); ``reference``, the summary of the growth run a fixed model is matched
    to, sets the epochs so that this run's training spends what that run's training and growth
    spent (``match_compute``: :func:`matched_epochs`), or the split of its units among experiences
    (``match_split``: as that run grew them, each experience training its own; ``split``, the widths
    after each experience, gives it without a summary). Returns the summary.
    """
    if not isinstance(plan, RunPlan):
        raise TypeError(f"run() takes a RunPlan (RunConfig.resolve()), got {type(plan).__name__}")
    resolved, cfg = plan, plan.config
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    out = None if out_dir is None else Path(out_dir)
    bm, model, device, found = prepare(plan, hidden_sizes)
    if verbose and found is not None and is_external(cfg.model):
        print(f"{cfg.model}: {found.describe()}", flush=True)
    why = over_budget(model, cfg.grow.max_params)  # bad input: exit 2 before training, not a failed run
    if why is not None:
        raise ConfigError(f"max_params: {why}")
    epochs = cfg.train_epochs
    if cfg.match_compute:
        if reference is None:
            raise ConfigError("match_compute: a fixed model matched by compute needs its growth run's summary")
        epochs = matched_epochs(reference, model, bm)
    isolation = []
    if cfg.match_split:
        from clgrow.strategies.isolation import IsolationPlugin

        if split is None and reference is None:
            raise ConfigError("match_split: a fixed model split like a growth run needs that run's summary")
        widths = split if split is not None else reference.hidden_sizes if reference is not None else []
        isolation = [IsolationPlugin(split=[list(w) for w in widths])]
    optimizer = build_optimizer(cfg.optimizer, model, cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    writer = ResultsWriter(out)
    extra = make_loggers(cfg.loggers, out, out.name if out is not None else "run", cfg.to_dict())
    evaluator = LeanEvaluationPlugin(
        accuracy_metrics(experience=True, stream=True),
        forgetting_metrics(experience=True, stream=True),
        *inactivity_metrics(tau=cfg.tau),
        *growth_metrics(),
        loggers=[writer, *extra],
    )
    try:
        bar = None
        if progress:
            from tqdm.auto import tqdm

            # a bar only on a terminal: in a log file it is a line per refresh
            bar = tqdm(total=0, unit="it", leave=False, file=sys.stderr, disable=not sys.stderr.isatty())
        timer = _Timer(bar)
        strategy = build_strategy(
            cfg.strategy,
            model,
            resolved.growth,
            optimizer=optimizer,
            train_mb_size=cfg.train_mb_size,
            train_epochs=epochs,
            eval_mb_size=cfg.eval_mb_size,
            evaluator=evaluator,
            plugins=[ComputePlugin(), timer, _FiniteLoss(), *isolation],
            device=device,
            plasticity=resolved.resetter or "none",
            prune=cfg.prune,
            prune_select=cfg.prune_select,
            prune_tau=cfg.prune_tau,
            reset_optimizer=cfg.reset_optimizer,
            **resolved.hyperparameters,
        )
        plugin = next((p for p in strategy.plugins if isinstance(p, GrowPlugin)), None)
        train_stream, test_stream = bm.scenario.train_stream, bm.scenario.test_stream
        n = len(train_stream)
        task_labels = [int(exp.task_label) for exp in test_stream]
        # joint trains once on every experience together: one step, evaluated like the others' last
        joint = traits(cfg.strategy).trains_jointly
        steps = [train_stream] if joint else list(train_stream)
        for i, exp in enumerate(steps):
            if bar is not None:
                size = sum(len(e.dataset) for e in (train_stream if joint else [exp]))
                batches = -(-size // cfg.train_mb_size)
                bar.reset(total=batches * epochs)
                bar.set_description(f"{cfg.strategy}/{cfg.growth_label} exp {i + 1}/{n}")
            strategy.train(exp)
            if bar is not None and plugin is not None and plugin.events and plugin.events[-1].experience == i:
                bar.set_postfix_str(f"grew {sum(plugin.events[-1].report.allocation.values())} units")
            strategy.eval(test_stream)
            if verbose:
                line = _line(i, summarize(cfg, strategy, writer, timer, task_labels, epochs))
                if bar is not None:
                    bar.write(line, file=sys.stdout)
                else:
                    print(line, flush=True)
        if bar is not None:
            bar.close()
        summary = summarize(cfg, strategy, writer, timer, task_labels, epochs)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            writer.write()
            from clgrow.experiments.plots import plot_run

            # summary.json last: it marks the run (a grid's cell) done, so it must not exist unless
            # every other file, figures included, was written completely
            plot_run(summary, out / "figures")
            clgrow.save_grown(strategy.model, out / "model.pt")  # reloaded by clgrow.load_grown
            atomic_write_text(out / "summary.json", json.dumps(summary.to_dict(), indent=1))
    finally:
        close_loggers(extra)
    return summary
