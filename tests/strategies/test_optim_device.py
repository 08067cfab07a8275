"""Optimizer settings and devices: decay never reaches frozen weights; everything on the chosen device."""

from __future__ import annotations

import pytest
import torch

from clgrow import UniformDistributor, mlp
from clgrow.experiments.device import resolve_device
from clgrow.strategies import build_optimizer, build_strategy
from tests.helpers import producer, sites
from tests.strategies.conftest import fast_plugin, quiet


@pytest.mark.parametrize("opt", ["adamw", "sgd", "adam"])
def test_weight_decay_never_reaches_frozen_weights(split_digits, opt):
    """LFL freezes the head after the first experience; growth then adds its columns (frozen
    too). With strong decay the frozen block must not move through growth and training."""
    model = mlp(split_digits.in_features, [8, 8], split_digits.num_classes)
    optimizer = build_optimizer(opt, model, 1e-2, weight_decay=0.5)
    plugin = fast_plugin(distributor=UniformDistributor())
    strategy = build_strategy(
        "lfl", model, None, optimizer=optimizer, plugins=[plugin], evaluator=quiet(), train_mb_size=32, lambda_e=0.5
    )
    stream = split_digits.scenario.train_stream
    strategy.train(stream[0])
    head = model[-1].weight.detach().clone()
    hidden = producer(model, 0).weight.detach().clone()
    strategy.train(stream[1])
    assert sites(model).hidden_sizes == [10, 10]  # it grew
    assert not model[-1].weight.requires_grad
    assert torch.equal(model[-1].weight.detach()[:, :8], head)
    assert not torch.equal(producer(model, 0).weight.detach()[:8], hidden)  # the rest trained (and decayed)


def test_sgd_momentum_and_decay_reach_the_optimizer():
    model = mlp(4, [3], 2)
    opt = build_optimizer("sgd", model, 0.1, momentum=0.0, weight_decay=1e-3)
    assert opt.param_groups[0]["momentum"] == 0.0 and opt.param_groups[0]["weight_decay"] == 1e-3
    assert build_optimizer("sgd", model).param_groups[0]["momentum"] == 0.9
    assert isinstance(build_optimizer("adamw", model, weight_decay=0.1), torch.optim.AdamW)


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "cpu:1", "tpu", 3])
def test_malformed_devices_are_named(spec):
    with pytest.raises(ValueError, match="not a device|device name"):
        resolve_device(spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_cuda_is_named():
    with pytest.raises(ValueError, match="'cuda:1': this machine has no CUDA device"):
        resolve_device("cuda:1")
    assert resolve_device("auto").type in ("cpu", "mps")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("strategy_name", ["naive", "replay", "ewc", "si", "mas", "der"])
def test_growth_on_cuda(split_digits, strategy_name):
    """Model, growth (SVoD's copy, SWE's coupling), regulariser state and metrics on the GPU."""
    from clgrow import SWE, SVoD
    from clgrow.strategies import GrowPlugin

    torch.manual_seed(0)
    model = mlp(split_digits.in_features, [16, 16], split_digits.num_classes).to("cuda")
    plugin = GrowPlugin(neurons_per_experience=8, extender=SWE(), distributor=SVoD())
    hp = {"replay": dict(mem_size=60), "der": dict(mem_size=60)}.get(strategy_name, {})
    strategy = build_strategy(
        strategy_name, model, None, plugins=[plugin], evaluator=quiet(), train_mb_size=32, device="cuda", **hp
    )
    for exp in split_digits.scenario.train_stream[:3]:
        strategy.train(exp)
        strategy.eval(split_digits.scenario.test_stream[:3])
    assert sum(sites(model).hidden_sizes) == 32 + 16
    assert all(p.is_cuda for p in model.parameters())
    assert all(
        v.is_cuda for st in strategy.optimizer.state.values() for v in st.values() if torch.is_tensor(v) and v.dim()
    )
