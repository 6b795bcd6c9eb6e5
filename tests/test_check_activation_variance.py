from __future__ import annotations

import pytest
import torch
from conftest import blobs, findings_named, init_all, mlp
from torch import nn

import babysit
from babysit import Severity

NAME = "activation-variance-unstable"


def _check(model, x=None, y=None):
    if x is None:
        x, y = blobs()
    return babysit.check(model, x, y, loss_fn=nn.CrossEntropyLoss(), experiments=False)


@pytest.mark.parametrize("depth", [2, 3, 5, 8])
def test_quiet_on_pytorch_default_init(depth):
    report = _check(mlp(depth=depth, width=128))
    assert findings_named(report, NAME) == []
    assert NAME in report.checks_run


@pytest.mark.parametrize("act", [nn.ReLU, nn.Tanh])
def test_quiet_on_variance_preserving_init(act):
    model = mlp(depth=8, width=128, act=act)
    for m in model:
        if isinstance(m, nn.Linear):
            if act is nn.ReLU:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            else:
                nn.init.xavier_normal_(m.weight, gain=nn.init.calculate_gain("tanh"))
    assert findings_named(_check(model), NAME) == []


def test_fires_on_tiny_init_through_depth_and_names_the_first_layer():
    model = init_all(mlp(depth=8, width=128), std=0.01)
    [finding] = findings_named(_check(model), NAME)
    assert finding.severity is Severity.WARNING
    assert "vanishes" in finding.message
    assert finding.location.layer == "0"  # the very first Linear is already 30x too small
    assert finding.evidence["relative_std"] < 1e-4
    assert finding.evidence["recommended_std"] == pytest.approx((2 / 20) ** 0.5, rel=1e-3)
    assert 'kaiming_normal_(m.weight, nonlinearity="relu")' in finding.fix


def test_fires_on_exploding_init():
    model = init_all(mlp(depth=5, width=128), std=0.3)
    [finding] = findings_named(_check(model), NAME)
    assert "explodes" in finding.message


def test_recommends_xavier_for_tanh():
    model = init_all(mlp(depth=8, width=128, act=nn.Tanh), std=0.01)
    [finding] = findings_named(_check(model), NAME)
    assert finding.evidence["nonlinearity"] == "tanh"
    assert "xavier_normal_" in finding.fix


def test_functional_relu_is_inferred_from_zeros():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(20 if i == 0 else 128, 128) for i in range(8))
            self.out = nn.Linear(128, 10)

        def forward(self, x):
            for layer in self.layers:
                x = torch.relu(layer(x))
            return self.out(x)

    model = init_all(Functional(), std=0.01)
    [finding] = findings_named(_check(model), NAME)
    assert finding.evidence["nonlinearity"] == "relu"
    assert finding.location.layer == "layers.0"


def test_networks_with_normalization_are_exempt():
    model = init_all(mlp(depth=8, width=128, batchnorm=True), std=0.01)
    assert findings_named(_check(model), NAME) == []


def test_small_output_layer_alone_is_not_vanishing():
    model = mlp(depth=3, width=128)
    nn.init.normal_(model[-1].weight, std=1e-4)  # what loss-at-init-not-chance recommends
    assert findings_named(_check(model), NAME) == []


def test_moderate_shrinkage_is_info_only():
    model = init_all(mlp(depth=5, width=128), std=0.05)
    [finding] = findings_named(_check(model), NAME)
    assert finding.severity is Severity.INFO


def test_recorded_statistics_match_a_direct_computation():
    """The probe's numbers are the real per-layer moments (cached sums must not leak
    between layers)."""
    model = mlp(depth=3, width=64)
    x, y = blobs(128)
    report = babysit.check(model, x, y, loss_fn=nn.CrossEntropyLoss(), experiments=False)
    h = x
    with torch.no_grad():
        for index, layer in enumerate(model):
            h_in, h = h, layer(h)
            sample = report.trace.layers[str(index)]["samples"][0]
            assert sample["mean"] == pytest.approx(h.mean().item(), abs=1e-5)
            assert sample["var"] == pytest.approx(h.var(unbiased=False).item(), rel=1e-4)
            if isinstance(layer, nn.Linear):
                assert sample["in_var"] == pytest.approx(h_in.var(unbiased=False).item(), rel=1e-4)
                assert sample["in_zero_frac"] == pytest.approx((h_in == 0).float().mean().item())
            if isinstance(layer, nn.ReLU):
                dead = (h.amax(dim=0) <= 0).float().mean().item()
                assert sample["dead_frac"] == pytest.approx(dead)
