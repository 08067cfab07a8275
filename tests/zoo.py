"""Models researchers bring, as the tests build them: Avalanche's, torchvision's and a user's own.

Each entry builds a fresh model (seeded) and says its input shape and classes. Multi-task models
are built with their heads unmasked, as Avalanche's adaptation leaves a head after its first
experience (an untrained ``MultiHeadClassifier`` masks every output).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


class UserResidualNet(nn.Module):
    """A user's module: functional ReLUs, a residual add, a flatten inside ``forward``."""

    def __init__(self, in_features: int = 20, width: int = 12, classes: int = 5) -> None:
        super().__init__()
        self.inp = nn.Linear(in_features, width)
        self.a = nn.Linear(width, 16)
        self.b = nn.Linear(16, width)
        self.c = nn.Linear(width, 10)
        self.head = nn.Linear(10, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.inp(x.flatten(1)))
        h = h + self.b(F.relu(self.a(h)))  # a residual stream: inp and b produce it, a and c read it
        return self.head(torch.relu(self.c(h)))


class ResidualMLP(nn.Module):
    """Transformer-style MLP blocks without attention: an embedding and every block's second layer
    add to one stream, read through a batch norm by every block's first layer, and by the head."""

    def __init__(self, in_features: int = 20, width: int = 12, hidden: int = 16, blocks: int = 2, classes: int = 5):
        super().__init__()
        self.embed = nn.Linear(in_features, width)
        self.norms = nn.ModuleList(nn.BatchNorm1d(width) for _ in range(blocks))
        self.fc1 = nn.ModuleList(nn.Linear(width, hidden) for _ in range(blocks))
        self.fc2 = nn.ModuleList(nn.Linear(hidden, width) for _ in range(blocks))
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x.flatten(1))
        for norm, a, b in zip(self.norms, self.fc1, self.fc2):
            h = h + b(F.relu(a(norm(h))))
        return self.head(h)


@dataclass(frozen=True)
class ZooModel:
    build: Callable[[], nn.Module]
    shape: tuple[int, ...]
    classes: int
    sites: int  # growth sites the trace must find

    @property
    def multi_task(self) -> bool:
        return hasattr(self.build(), "forward_single_task")


def _unmasked(model: nn.Module) -> nn.Module:
    for mod in model.modules():
        if hasattr(mod, "masking"):
            mod.masking = False
    return model


def _zoo() -> dict[str, ZooModel]:
    import avalanche.models as am
    import torchvision.models as tvm

    return {
        "SimpleMLP": ZooModel(
            lambda: am.SimpleMLP(num_classes=4, input_size=36, hidden_size=12, hidden_layers=2), (1, 6, 6), 4, 2
        ),
        "MTSimpleMLP": ZooModel(lambda: _unmasked(am.MTSimpleMLP(input_size=36, hidden_size=12)), (1, 6, 6), 2, 1),
        "SimpleCNN": ZooModel(lambda: am.SimpleCNN(num_classes=4), (3, 12, 12), 4, 5),
        "MTSimpleCNN": ZooModel(lambda: _unmasked(am.MTSimpleCNN()), (3, 12, 12), 2, 5),
        # a ResNet-18's sites: its four residual streams and its eight blocks' inner channels
        "SlimResNet18": ZooModel(lambda: am.SlimResNet18(4, nf=4), (3, 32, 32), 4, 12),
        "MTSlimResNet18": ZooModel(lambda: _unmasked(am.MTSlimResNet18(4, nf=4)), (3, 32, 32), 2, 12),
        "resnet18": ZooModel(lambda: tvm.resnet18(num_classes=4), (3, 32, 32), 4, 12),
        "vgg11_bn": ZooModel(lambda: tvm.vgg11_bn(num_classes=4), (3, 32, 32), 4, 10),
        "UserResidualNet": ZooModel(lambda: UserResidualNet(classes=4), (20,), 4, 3),
        # its stream (embedding and both blocks' fc2, two norms on it) and both blocks' fc1
        "ResidualMLP": ZooModel(lambda: ResidualMLP(classes=4), (20,), 4, 3),
    }


ZOO: dict[str, ZooModel] = _zoo()


def zoo_data(
    entry: ZooModel, n: int = 16, batch: int = 8, seed: int = 0, task: int = 0
) -> list[tuple[torch.Tensor, ...]]:
    """``(x, y, t)`` batches for ``entry`` (task label ``task`` throughout)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *entry.shape, generator=g)
    y = torch.randint(0, entry.classes, (n,), generator=g)
    t = torch.full((n,), task, dtype=torch.long)
    return [(x[i : i + batch], y[i : i + batch], t[i : i + batch]) for i in range(0, n, batch)]


def call(model: nn.Module, x: torch.Tensor, task: int = 0) -> torch.Tensor:
    """The model's own call, with task label ``task`` for a multi-task model."""
    if hasattr(model, "forward_single_task"):
        return model(x, torch.full((x.shape[0],), task, dtype=torch.long))
    return model(x)


def add_task_head(model: nn.Module, task: int) -> None:
    """A head for ``task`` in every multi-head classifier, as Avalanche's adaptation adds one."""
    from avalanche.models import IncrementalClassifier, MultiHeadClassifier

    for mod in model.modules():
        if isinstance(mod, MultiHeadClassifier) and str(task) not in mod.classifiers:
            mod.classifiers[str(task)] = IncrementalClassifier(mod.in_features, 2, masking=False)
