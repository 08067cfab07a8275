"""A grown model saved and loaded into a fresh instance of its own class: strict, bit-identical."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from clgrow import GrowthError, grow, load_grown, save_grown
from clgrow.sites import as_growable
from tests.helpers import state_equal
from tests.zoo import ZOO, call, zoo_data

NAMES = [n for n in ZOO if n not in ("resnet18", "vgg11_bn")]  # the two largest: one growth path like the others


def _grown(name: str) -> nn.Module:
    entry = ZOO[name]
    torch.manual_seed(3)
    model = entry.build()
    loader = zoo_data(entry)
    grow(model, 5, loader, "swe", "uniform")
    grow(model, 3, loader, "random", "proportional")
    return model


@pytest.mark.parametrize("name", NAMES)
def test_every_zoo_model_reloads_grown_into_a_fresh_instance_bit_identically(tmp_path, name):
    entry = ZOO[name]
    model = _grown(name)
    save_grown(model, tmp_path / "grown.pt")
    torch.manual_seed(99)  # a fresh instance: other initial weights, the initial widths
    fresh = entry.build()
    load_grown(fresh, tmp_path / "grown.pt")
    assert state_equal(fresh.state_dict(), model.state_dict())
    x = zoo_data(entry, seed=1)[0][0]
    for mode in (False, True):  # train mode: batch statistics, and dropout's masks drawn alike
        outs = []
        for m in (model, fresh):
            m.train(mode)
            torch.manual_seed(7)
            outs.append(call(m, x))
        assert torch.equal(*outs)
    a, b = as_growable(model), as_growable(fresh, x, 0 if entry.multi_task else None)
    assert a.hidden_sizes == b.hidden_sizes
    assert all(torch.equal(a.cohort(i), b.cohort(i)) for i in range(a.num_hidden_layers))
    # the reloaded model grows on, its cohorts counted on from the saved ones
    grow(fresh, 2, zoo_data(entry), "random", "uniform")
    assert int(b.growth_steps) == int(a.growth_steps) + 1


def test_a_layer_given_a_bias_by_growth_gets_it_back():
    model = nn.Sequential(nn.Linear(6, 4, bias=False), nn.ReLU(), nn.Linear(4, 3))
    x = torch.randn(5, 6)
    grow(model, 2, [(x, torch.zeros(5, dtype=torch.long))], "random", "uniform")
    fresh = nn.Sequential(nn.Linear(6, 4, bias=False), nn.ReLU(), nn.Linear(4, 3))
    load_grown(
        fresh,
        {
            "format": "clgrow.grown/1",
            "state_dict": model.state_dict(),
            "parameters": [n for n, _ in model.named_parameters()],
        },
    )
    assert fresh[0].bias is not None and fresh[0].out_features == 6 and fresh[2].in_features == 6
    assert torch.equal(fresh(x), model(x))
    assert {n for n, _ in fresh.named_parameters()} == {n for n, _ in model.named_parameters()}


def test_a_checkpoint_of_another_model_is_refused_and_leaves_the_model_as_it_was(tmp_path):
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))
    grow(model, 2, [(torch.randn(5, 6), torch.zeros(5, dtype=torch.long))], "random", "uniform")
    save_grown(model, tmp_path / "a.pt")
    other = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(GrowthError, match="does not fit|no module"):
        load_grown(other, tmp_path / "a.pt")
    assert state_equal(other.state_dict(), before) and other[0].out_features == 4
    torch.save({"weights": 1}, tmp_path / "b.pt")
    with pytest.raises(GrowthError, match="not a checkpoint written by save_grown"):
        load_grown(other, tmp_path / "b.pt")


def test_a_fresh_process_reloads_the_users_class(tmp_path):
    """The documented call in another interpreter: the user's class, built as usual, then load_grown."""
    from tests.zoo import ResidualMLP

    torch.manual_seed(0)
    model = ResidualMLP(classes=4)
    x = torch.rand(8, 20)
    grow(model, 6, [(x, torch.zeros(8, dtype=torch.long))], "swe", "uniform")
    save_grown(model, tmp_path / "m.pt")
    torch.save(x, tmp_path / "x.pt")
    torch.save(model(x).detach(), tmp_path / "y.pt")
    script = (
        "import torch; from clgrow import load_grown; from tests.zoo import ResidualMLP\n"
        f"m = load_grown(ResidualMLP(classes=4), {str(tmp_path / 'm.pt')!r})\n"
        f"x = torch.load({str(tmp_path / 'x.pt')!r}); y = torch.load({str(tmp_path / 'y.pt')!r})\n"
        "assert torch.equal(m(x), y), 'outputs differ'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_heads_added_in_training_come_back_with_their_grown_widths(tmp_path):
    """A multi-task model after a stream holds heads its constructor does not make: each comes
    back from the container's first, with its saved shapes."""
    from tests.zoo import add_task_head

    entry = ZOO["MTSimpleMLP"]
    torch.manual_seed(0)
    model = entry.build()
    add_task_head(model, 1)
    add_task_head(model, 2)
    grow(model, 4, zoo_data(entry), "random", "uniform")
    save_grown(model, tmp_path / "mt.pt")
    fresh = load_grown(entry.build(), tmp_path / "mt.pt")
    x = zoo_data(entry)[0][0]
    model.eval()
    fresh.eval()
    for task in (0, 1, 2):
        assert torch.equal(call(fresh, x, task), call(model, x, task))
