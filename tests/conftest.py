"""Shared fixtures: small real data that ships with scikit-learn, and tiny trained models."""

from __future__ import annotations

import copy

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from clgrow import mlp
from tests.helpers import train


@pytest.fixture(scope="session")
def digits() -> TensorDataset:
    """The 1,797 scikit-learn digits, scaled to [0, 1], as a TensorDataset."""
    X, y = load_digits(return_X_y=True)
    return TensorDataset(torch.tensor(X / 16.0, dtype=torch.float32), torch.tensor(y))


@pytest.fixture()
def digits_loader(digits: TensorDataset) -> DataLoader:
    """A small deterministic loader over 512 digits."""
    sub = TensorDataset(*(t[:512] for t in digits.tensors))
    return DataLoader(sub, batch_size=64, shuffle=False)


_TRAINED: dict[str, nn.Module] = {}


@pytest.fixture()
def trained_mlp(digits_loader: DataLoader) -> nn.Module:
    """clgrow's MLP [16, 16, 16] trained for 3 epochs on digits (a fresh copy per test)."""
    if "mlp" not in _TRAINED:
        torch.manual_seed(0)
        model = mlp(64, [16, 16, 16], 10)
        train(model, digits_loader, epochs=3)
        _TRAINED["mlp"] = model
    return copy.deepcopy(_TRAINED["mlp"])
