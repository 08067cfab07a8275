"""Growth disruption measures, recomputed from their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from clgrow import Probe, mlp, output_change, probe_outputs


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), c=st.integers(2, 7), seed=st.integers(0, 10_000), scale=st.floats(0.0, 3.0))
def test_output_change_matches_its_definition(n, c, seed, scale):
    g = torch.Generator().manual_seed(seed)
    before = torch.randn(n, c, generator=g) * 3
    after = before + scale * torch.randn(n, c, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    ch = output_change(before, after, y, experience=4)
    b, a, t = before.numpy().astype(np.float64), after.numpy().astype(np.float64), y.numpy()
    p = np.exp(b - b.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    q = np.exp(a - a.max(1, keepdims=True))
    q /= q.sum(1, keepdims=True)
    kl = float(np.mean(np.sum(p * (np.log(p) - np.log(q)), 1)))
    assert ch.experience == 4
    assert ch.accuracy_before == pytest.approx(float(np.mean(b.argmax(1) == t)))
    assert ch.accuracy_after == pytest.approx(float(np.mean(a.argmax(1) == t)))
    assert ch.drop == pytest.approx(ch.accuracy_before - ch.accuracy_after)
    assert ch.kl == pytest.approx(max(kl, 0.0), abs=1e-9)


def test_unchanged_outputs_are_no_disruption_and_shapes_must_match():
    z = torch.randn(10, 3)
    ch = output_change(z, z.clone(), torch.zeros(10, dtype=torch.long))
    assert ch.drop == 0.0 and ch.kl == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        output_change(z, torch.randn(10, 4), torch.zeros(10, dtype=torch.long))
    empty = output_change(torch.empty(0, 3), torch.empty(0, 3), torch.empty(0, dtype=torch.long))
    assert math.isnan(empty.kl)


def test_probe_outputs_in_eval_mode_and_mode_put_back():
    model = mlp(5, [6], 3, dropout=0.5)
    model.train()
    probe = Probe(0, torch.randn(7, 5), torch.zeros(7, dtype=torch.long), torch.zeros(7, dtype=torch.long))
    a, b = probe_outputs(model, probe), probe_outputs(model, probe, batch_size=2)
    assert model.training and a.shape == (7, 3)
    assert torch.allclose(a, b)  # dropout off: deterministic, batching does not matter
    model.eval()
    assert torch.allclose(a, model(probe.x))
