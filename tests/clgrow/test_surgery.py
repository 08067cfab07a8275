"""Adding channels to a convolution leaves the network's function unchanged, whatever reads them
(the surgery table through the site view, one layer kind at a time)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from clgrow.errors import GrowthError
from clgrow.sites import as_growable, channel_activity
from clgrow.surgery import default_init


def _net(c0, c1, c2, kernel, stride, padding, norm, pool, kind, size):
    """conv -> [bn] -> relu -> [maxpool] -> consumer of the given kind -> 5 outputs."""
    conv = nn.Conv2d(c0, c1, kernel, stride=stride, padding=padding)
    bn = nn.BatchNorm2d(c1) if norm else None
    front = [conv] + ([bn] if bn is not None else []) + [nn.ReLU()] + ([nn.MaxPool2d(2)] if pool else [])
    with torch.no_grad():
        h, w = nn.Sequential(*front)(torch.zeros(1, c0, size, size)).shape[2:]
    if kind == "conv":
        cons = nn.Conv2d(c1, c2, 3, padding=1)
        back = [cons, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c2, 5)]
    elif kind == "flatten":
        cons = nn.Linear(c1 * h * w, 5)
        back = [nn.Flatten(), cons]
    else:
        cons = nn.Linear(c1, 5)
        back = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), cons]
    net = nn.Sequential(*front, *back)
    grown = as_growable(net, torch.zeros(2, c0, size, size))
    reader = grown.consumers(0)[0]
    flat = kind == "flatten" and h * w > 1  # a 1x1 map flattens to one column per channel
    assert reader.module is cons and reader.kind == ("flatten" if flat else "pool" if kind != "conv" else "conv")
    assert reader.block == (h * w if flat else 1)
    return net, conv, bn, reader


@settings(max_examples=40, deadline=None)
@given(
    c0=st.integers(1, 3),
    c1=st.integers(1, 6),
    c2=st.integers(1, 4),
    k=st.integers(0, 5),
    kernel=st.sampled_from([1, 3]),
    stride=st.sampled_from([1, 2]),
    padding=st.sampled_from([0, 1]),
    norm=st.booleans(),
    pool=st.booleans(),
    kind=st.sampled_from(["conv", "flatten", "pool"]),
    size=st.integers(6, 10),
    seed=st.integers(0, 2**16),
)
def test_added_channels_preserve_the_function_in_both_modes(
    c0, c1, c2, k, kernel, stride, padding, norm, pool, kind, size, seed
):
    torch.manual_seed(seed)
    net, conv, bn, reader = _net(c0, c1, c2, kernel, stride, padding, norm, pool, kind, size)
    x = torch.randn(4, c0, size, size)
    if bn is not None:  # running statistics that are not the defaults
        net.train()
        net(torch.randn(8, c0, size, size))
    old_reader = reader.module.weight.detach().clone()
    net.eval()
    before_eval = net(x)
    saved = None if bn is None else (bn.running_mean.clone(), bn.running_var.clone())
    net.train()
    before_train = net(x)  # moves the running statistics: keep where they went, then put them back
    moved = None if bn is None else (bn.running_mean.clone(), bn.running_var.clone())
    if bn is not None and saved is not None:
        bn.running_mean.copy_(saved[0])
        bn.running_var.copy_(saved[1])
    grown = as_growable(net)
    w0, b0 = default_init(k, grown.members(0)[0].fan_in)
    idx = grown.add_units(0, w0, b0)
    assert idx.tolist() == list(range(c1, c1 + k))
    assert conv.weight.shape[0] == c1 + k and conv.out_channels == c1 + k
    w = reader.module.weight
    assert torch.equal(w[:, : old_reader.shape[1]], old_reader)  # old entries are the leading block
    assert not w[:, old_reader.shape[1] :].any()  # the new channels' slices are zero
    net.eval()
    torch.testing.assert_close(net(x), before_eval, rtol=1e-5, atol=1e-6)
    net.train()
    torch.testing.assert_close(net(x), before_train, rtol=1e-5, atol=1e-6)  # batch statistics, per channel
    if bn is not None and moved is not None:  # the old channels' running statistics moved exactly as before
        assert bn.num_features == c1 + k
        torch.testing.assert_close(bn.running_mean[:c1], moved[0])
        torch.testing.assert_close(bn.running_var[:c1], moved[1])


def test_new_filters_and_flattened_rows_are_accepted_and_checked():
    torch.manual_seed(0)
    net, conv, _, _ = _net(2, 3, 2, 3, 1, 1, True, False, "flatten", 6)
    grown = as_growable(net)
    rows = torch.randn(2, 2 * 3 * 3)  # the flattened form extenders write
    grown.add_units(0, rows, torch.zeros(2))
    assert torch.equal(conv.weight[3:].reshape(2, -1), rows)
    grown.add_units(0, torch.randn(1, 2, 3, 3), torch.zeros(1))  # or whole filters
    with pytest.raises(GrowthError, match=r"must have shape \(k, 18\)"):
        grown.add_units(0, torch.zeros(1, 3), torch.zeros(1))
    with pytest.raises(GrowthError, match="outgoing weights of a flatten consumer"):
        grown.add_units(0, torch.zeros(1, 18), torch.zeros(1), torch.zeros(5, 1, 1))


def test_the_default_filters_follow_conv2ds_own_initialisation():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 3, 3)
    w, b = default_init(1000, 4 * 3 * 3)
    bound = 1 / (4 * 3 * 3) ** 0.5
    assert w.shape == (1000, 36) and w.abs().max() <= bound and b.abs().max() <= bound
    assert float(w.std()) == pytest.approx(float(conv.weight.detach().std()), rel=0.3)


def test_channel_activity_is_zero_exactly_for_dead_channels():
    h = torch.relu(torch.randn(5, 3, 4, 4))
    h[:, 1] = 0.0
    act = channel_activity(h)
    assert act.shape == (5, 3) and not act[:, 1].any() and act[:, 0].all()
    assert torch.equal(channel_activity(act), act)
    assert channel_activity(torch.ones(2, 3, 4)).shape == (2, 3)  # a 1-d convolution's maps
    with pytest.raises(ValueError, match="activations"):
        channel_activity(torch.zeros(2))
