"""Every registered extender x distributor grows a model that stays trainable.

Parametrised over the registries, so a method is covered as soon as it is registered.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from clgrow import Distributor, Extender, distributors, extenders, grow, mlp
from tests.helpers import sites

# Small budgets keep the grid fast; the behaviour under test does not depend on them.
_FAST = {"swe": dict(passes=0.25), "svod": dict(train_passes=0.25, vote_passes=0.25), "gradmax": dict(passes=0.25)}


def _build(registry, name):
    return registry[name](**_FAST.get(name, {}))


@pytest.mark.parametrize("ext_name,dist_name", list(itertools.product(sorted(extenders), sorted(distributors))))
def test_every_combination_grows_and_trains(trained_mlp, digits_loader, ext_name, dist_name):
    ext, dist = _build(extenders, ext_name), _build(distributors, dist_name)
    assert isinstance(ext, Extender) and isinstance(dist, Distributor)
    report = grow(trained_mlp, 9, digits_loader, ext, dist)
    assert sum(report.allocation.values()) == 9
    assert sum(sites(trained_mlp).hidden_sizes) == 48 + 9
    for layer, idx in report.new_units.items():
        assert idx.numel() == report.allocation[layer]
        assert torch.equal(sites(trained_mlp).cohort(layer)[idx], torch.full_like(idx, 1))
    # trainable: one optimizer over all parameters, every one gets a gradient, loss goes down
    opt = torch.optim.Adam(trained_mlp.parameters(), lr=1e-3)
    x, y = next(iter(digits_loader))
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(trained_mlp(x), y)
        loss.backward()
        assert all(p.grad is not None for p in trained_mlp.parameters())
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_registries_look_up_by_name_and_name_unknowns():
    from clgrow import SWE, SVoD

    assert extenders["swe"] is SWE and distributors["svod"] is SVoD
    with pytest.raises(KeyError, match="unknown extender 'nope'.*swe"):
        extenders["nope"]


def test_growth_with_a_backbone_only_grows_the_mlp(digits_loader):
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 3, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
    model = mlp(12, [8, 8], 10, backbone=backbone)
    bb = {k: v.clone() for k, v in backbone.state_dict().items()}
    grow(model, 6, digits_loader, "swe", "uniform")
    assert sites(model).hidden_sizes == [11, 11]
    assert all(torch.equal(v, backbone.state_dict()[k]) for k, v in bb.items())


def test_a_subclass_of_a_declared_method_keeps_the_parents_declaration_intact_or_is_refused_saying_how():
    from clgrow import SWE, extenders

    before = (extenders.params("swe").method, extenders.params("swe").__doc__)
    try:

        @extenders.register("swe-copy")
        class Copy(SWE):
            """SWE under another name."""

        assert extenders.params("swe").method == "swe" and extenders.params("swe-copy").method == "swe-copy"
        assert (extenders.params("swe").method, extenders.params("swe").__doc__) == before
        assert Copy(passes=0.3).passes == 0.3  # the parent's arguments, checked as before
        with pytest.raises(TypeError, match=r"adds __init__ arguments(.|\n)*declare them instead"):

            @extenders.register("swe-mine")
            class Mine(SWE):
                def __init__(self, mine_scale: float = 0.5, **kwargs):
                    super().__init__(**kwargs)
                    self.mine_scale = mine_scale

        with pytest.raises(KeyError, match=r"'swe' is already registered \(by clgrow"):
            extenders.register("swe")(Copy)
    finally:
        extenders.unregister("swe-copy")
        extenders.unregister("swe-mine")
