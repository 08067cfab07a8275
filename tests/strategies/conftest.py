"""Fixtures for the Avalanche tests: an embedded class-incremental split, fast growth settings."""

from __future__ import annotations

import warnings

import pytest
import torch

from clgrow import SWE, SVoD
from clgrow.experiments.benchmarks import BenchmarkInfo, make_benchmark
from clgrow.strategies import GrowPlugin

warnings.filterwarnings("ignore", message=".*No loggers specified.*")
warnings.filterwarnings("ignore", message=".*no QP solver.*")


@pytest.fixture(scope="session")
def split_digits() -> BenchmarkInfo:
    """split-digits, 5 class-incremental experiences of 2 classes."""
    return make_benchmark("split-digits", 5, seed=0)


@pytest.fixture(scope="session")
def split_digits_tasks() -> BenchmarkInfo:
    """split-digits with task labels (task-incremental, labels 0/1 per task)."""
    return make_benchmark("split-digits", 5, seed=0, task_labels=True)


def fast_plugin(**kwargs) -> GrowPlugin:
    """A GrowPlugin with small budgets (the behaviour tested does not depend on them)."""
    args = dict(
        neurons_per_experience=4,
        extender=SWE(passes=0.25),
        distributor=SVoD(train_passes=0.25, vote_passes=0.25),
    )
    args.update(kwargs)
    return GrowPlugin(**args)


def all_params_optimized(strategy) -> bool:
    """Every model parameter is in the optimizer, and the optimizer holds nothing else."""
    in_opt = {id(p) for g in strategy.optimizer.param_groups for p in g["params"]}
    in_model = {id(p) for p in strategy.model.parameters()}
    return in_model == in_opt


def quiet():
    """An evaluator that logs nothing to the console (stream accuracy only)."""
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training.plugins import EvaluationPlugin

    return EvaluationPlugin(accuracy_metrics(stream=True), loggers=[])


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
