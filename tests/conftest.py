from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

# Tiny models gain nothing from intra-op threads, and on a shared 2-core machine oversubscribed
# OpenMP threads make them 50x slower.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def mlp(
    depth: int = 3,
    width: int = 64,
    in_features: int = 20,
    classes: int = 10,
    act: type[nn.Module] = nn.ReLU,
    batchnorm: bool = False,
) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = in_features
    for _ in range(depth):
        layers.append(nn.Linear(d, width))
        if batchnorm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(act())
        d = width
    layers.append(nn.Linear(d, classes))
    return nn.Sequential(*layers)


def init_all(model: nn.Module, std: float) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            nn.init.normal_(module.weight, std=std)
            nn.init.zeros_(module.bias)
    return model


class SmallCNN(nn.Module):
    def __init__(self, classes: int = 4, channels: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def blobs(n: int = 256, features: int = 20, classes: int = 10, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, features, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    x = centers[y] + 0.5 * torch.randn(n, features, generator=g)
    x = (x - x.mean(0)) / x.std(0)
    return x, y


def findings_named(report, name: str):
    return [f for f in report.findings if f.name == name]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def no_leftover_hooks():
    """Asserts that nothing babysit installs is still installed after the test body."""
    import torch.nn.functional as F
    from torch.nn.modules import module as module_hooks
    from torch.optim import optimizer as optim_module
    from torch.utils.data import DataLoader

    before = {
        "pre": dict(module_hooks._global_forward_pre_hooks),
        "post": dict(module_hooks._global_forward_hooks),
        "opt": dict(optim_module._global_optimizer_post_hooks),
        "ce": F.cross_entropy,
        "mse": F.mse_loss,
        "iter": DataLoader.__iter__,
    }
    yield
    assert dict(module_hooks._global_forward_pre_hooks) == before["pre"]
    assert dict(module_hooks._global_forward_hooks) == before["post"]
    assert dict(optim_module._global_optimizer_post_hooks) == before["opt"]
    assert F.cross_entropy is before["ce"]
    assert F.mse_loss is before["mse"]
    assert DataLoader.__iter__ is before["iter"]


sys.path.insert(0, str(Path(__file__).parent))
