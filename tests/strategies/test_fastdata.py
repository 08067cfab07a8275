"""The batch-level data path yields exactly Avalanche's batches, or stands aside."""

from __future__ import annotations

import pytest
import torch
from avalanche.benchmarks.utils import AvalancheDataset
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import EvaluationPlugin

from clgrow import mlp
from clgrow.experiments.benchmarks import make_benchmark
from clgrow.strategies import build_strategy
from clgrow.strategies.fastdata import BatchDataPlugin, TensorBatchLoader, resolve_dataset
from tests.helpers import sites
from tests.strategies.conftest import fast_plugin


class _Record(SupervisedPlugin):
    """Every mini-batch the model sees, in training and evaluation, and the loader that gave it."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[torch.Tensor]] = []
        self.loaders: set[str] = set()

    def _keep(self, strategy) -> None:
        self.batches.append([t.clone() for t in strategy.mbatch])
        self.loaders.add(type(strategy.dataloader).__name__)

    def before_forward(self, strategy, **kw) -> None:
        self._keep(strategy)

    def before_eval_forward(self, strategy, **kw) -> None:
        self._keep(strategy)


def _run(bm, name: str, fast: bool, growth=None, dropout: float = 0.0, **kw):
    torch.manual_seed(0)
    model = mlp(bm.in_features, [16], bm.num_classes, dropout=dropout)
    rec = _Record()
    s = build_strategy(
        name,
        model,
        growth,
        train_mb_size=32,
        train_epochs=2,
        eval_mb_size=50,
        evaluator=EvaluationPlugin(loggers=[]),
        plugins=[rec],
        fast_data=fast,
        **kw,
    )
    for exp in list(bm.scenario.train_stream)[:3]:
        s.train(exp)
        s.eval(bm.scenario.test_stream[:2])
    data_plugin = next((p for p in s.plugins if isinstance(p, BatchDataPlugin)), None)
    return rec, torch.get_rng_state(), data_plugin, model


def _same_batches(a: _Record, b: _Record) -> bool:
    return len(a.batches) == len(b.batches) and all(
        len(x) == len(y) and all(u.dtype == v.dtype and torch.equal(u, v) for u, v in zip(x, y))
        for x, y in zip(a.batches, b.batches)
    )


@pytest.mark.parametrize(
    "name,task_labels,kw",
    [
        ("naive", False, {}),
        ("replay", False, {"mem_size": 60}),
        ("replay", True, {"mem_size": 60}),  # task-balanced buffer batches, labels remapped per task
        ("er-ace", False, {"mem_size": 60}),
        ("der", False, {"mem_size": 60}),  # its buffer (stored logits) keeps DER's own loader; current data goes fast
    ],
)
def test_fast_path_yields_avalanches_batches(name, task_labels, kw):
    bm = make_benchmark("split-digits", 5, seed=0, task_labels=task_labels)
    ref, ref_rng, none, _ = _run(bm, name, False, **kw)
    fast, fast_rng, plugin, _ = _run(bm, name, True, **kw)
    assert none is None and "TensorBatchLoader" not in ref.loaders
    assert fast.loaders == {"TensorBatchLoader"} and plugin.used > 0 and plugin.kept == 0
    assert _same_batches(ref, fast)  # content and order, replay samples included
    assert torch.equal(ref_rng, fast_rng)  # the random stream after the run is the same too


def test_replay_buffer_restarts_draw_when_avalanche_draws():
    """The buffer (60 samples, 2 batches) runs out and restarts within every epoch of ~10 batches;
    with dropout drawing from the global generator between batches, the fast path must draw each
    restart's order at the same point of the random stream as Avalanche's sampler does."""
    bm = make_benchmark("split-digits", 5, seed=0)
    ref, ref_rng, _, m_ref = _run(bm, "replay", False, dropout=0.3, mem_size=60)
    fast, fast_rng, plugin, m_fast = _run(bm, "replay", True, dropout=0.3, mem_size=60)
    assert plugin.kept == 0 and _same_batches(ref, fast) and torch.equal(ref_rng, fast_rng)
    for p, q in zip(m_ref.parameters(), m_fast.parameters()):
        assert torch.equal(p, q)


def test_growth_reads_the_same_batches_and_ends_with_the_same_model():
    bm = make_benchmark("split-digits", 5, seed=0)
    ref, _, _, m_ref = _run(bm, "replay", False, growth=fast_plugin().config, mem_size=60)
    fast, _, _, m_fast = _run(bm, "replay", True, growth=fast_plugin().config, mem_size=60)
    assert _same_batches(ref, fast)
    assert sites(m_ref).hidden_sizes == sites(m_fast).hidden_sizes and sites(m_ref).hidden_sizes != [16]
    for (n, p), q in zip(m_ref.named_parameters(), m_fast.parameters()):
        assert torch.allclose(p, q, atol=1e-6), n


def test_multi_leaf_streams_permuted_mnist(tmp_path):
    from tests.experiments.test_benchmarks import _fake_mnist

    _fake_mnist(tmp_path, "MNIST", n_train=120, n_test=50)
    bm = make_benchmark("permuted-mnist", 3, seed=1, data_root=tmp_path)
    ref, _, _, _ = _run(bm, "replay", False, mem_size=40)  # the buffer mixes permutations: several leaves
    fast, _, plugin, _ = _run(bm, "replay", True, mem_size=40)
    assert plugin.kept == 0 and _same_batches(ref, fast)


def test_stands_aside_where_it_would_not_be_exact():
    bm = make_benchmark("split-digits", 5, seed=0)
    ds = bm.scenario.train_stream[0].dataset
    assert resolve_dataset(ds) is not None
    # an input transform (here: a shift) cannot be gathered by index: keep Avalanche's loader
    shifted = ds.replace_current_transform_group(lambda x: x + 1)
    assert resolve_dataset(shifted) is None
    # data sets of other kinds
    plain = AvalancheDataset([torch.utils.data.TensorDataset(torch.zeros(4, 2), torch.zeros(4))])
    assert resolve_dataset(plain) is None


def test_loader_length_matches():
    bm = make_benchmark("split-digits", 5, seed=0)
    torch.manual_seed(0)
    s = build_strategy(
        "naive", mlp(64, [8], 10), None, train_mb_size=7, train_epochs=1, evaluator=EvaluationPlugin(loggers=[])
    )
    seen = []

    class _Len(SupervisedPlugin):
        def after_training_epoch(self, strategy, **kw):
            seen.append((type(strategy.dataloader), len(strategy.dataloader), strategy.clock.train_epoch_iterations))

    s.plugins.append(_Len())
    s.train(bm.scenario.train_stream[0])
    ((kind, length, iterations),) = seen
    assert kind is TensorBatchLoader and length == iterations == -(-len(bm.scenario.train_stream[0].dataset) // 7)


@pytest.mark.parametrize("name,kw", [("naive", {}), ("replay", {"mem_size": 60})])
def test_epochs_take_the_vectorised_order(monkeypatch, name, kw):
    from clgrow.strategies import fastdata

    taken = []
    real = fastdata._batch_streams

    def spy(samplers):
        out = real(samplers)
        taken.append((len(samplers), out is not None))
        return out

    monkeypatch.setattr(fastdata, "_batch_streams", spy)
    bm = make_benchmark("split-digits", 5, seed=0)
    fast, fast_rng, _, _ = _run(bm, name, True, **kw)
    monkeypatch.setattr(fastdata, "_batch_streams", real)
    ref, ref_rng, _, _ = _run(bm, name, False, **kw)
    # training (shuffled; replay: current data and buffer) and evaluation (sequential) epochs
    assert taken and all(ok for _, ok in taken)
    assert (max(k for k, _ in taken) == 2) == (name == "replay")
    assert _same_batches(ref, fast) and torch.equal(ref_rng, fast_rng)


def test_memoised_resolutions_do_not_keep_data_alive():
    """The resolution memos hang on Avalanche's nodes weakly: once a benchmark is dropped, its
    tensors go, even after training and evaluating through the batch path."""
    import gc
    import weakref

    bm = make_benchmark("split-digits", 5, seed=0)
    _run(bm, "replay", True, mem_size=60)
    leaves = [
        weakref.ref(leaf)
        for exp in (bm.scenario.train_stream[0], bm.scenario.test_stream[0])
        for leaf in resolve_dataset(exp.dataset).leaves
    ]
    assert leaves and all(r() is not None for r in leaves)
    del bm
    gc.collect()
    assert all(r() is None for r in leaves)
