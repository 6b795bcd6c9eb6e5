"""init-scheme-mismatch, symmetric-init, dead-relu and saturated-activation: fires on a real
model with the bug, quiet on the correct twin. These read the passive probes at init."""

from __future__ import annotations

import torch
from conftest import blobs, findings_named, init_all, mlp
from torch import nn

import babysit
from babysit import Severity


def _check(model, x=None, y=None, experiments=False):
    if x is None:
        x, y = blobs(64)
    return babysit.check(model, x, y, loss_fn=nn.CrossEntropyLoss(), experiments=experiments)


# -- init-scheme-mismatch ------------------------------------------------------------------------
def test_shallow_net_with_far_too_small_init_fires_with_the_right_calls():
    model = init_all(mlp(depth=2, width=128), std=0.01)
    [finding] = findings_named(_check(model), "init-scheme-mismatch")
    assert finding.severity is Severity.WARNING
    assert finding.location.layer == "0"
    assert 'kaiming_normal_(model.get_submodule("0").weight, nonlinearity="relu")' in finding.fix
    assert findings_named(_check(model), "activation-variance-unstable")[0].severity.value == "info"


def test_tanh_layers_are_compared_with_xavier():
    model = mlp(depth=2, width=128, act=nn.Tanh)
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=2.0)
    [finding] = findings_named(_check(model), "init-scheme-mismatch")
    assert "Xavier" in finding.message
    assert (
        'nn.init.xavier_normal_(model.get_submodule("0").weight, '
        'gain=nn.init.calculate_gain("tanh"))'
    ) in finding.fix


def test_default_and_kaiming_inits_are_quiet():
    assert findings_named(_check(mlp(depth=4, width=128)), "init-scheme-mismatch") == []
    model = mlp(depth=4, width=128)
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    assert findings_named(_check(model), "init-scheme-mismatch") == []


def test_layers_followed_by_normalization_are_exempt():
    model = init_all(mlp(depth=2, width=128, batchnorm=True), std=0.01)
    assert findings_named(_check(model), "init-scheme-mismatch") == []


def test_deep_collapse_is_reported_once_by_activation_variance():
    model = init_all(mlp(depth=8, width=128), std=0.01)
    report = _check(model)
    assert findings_named(report, "activation-variance-unstable")
    assert findings_named(report, "init-scheme-mismatch") == []


# -- symmetric-init ----------------------------------------------------------------------------
def test_zero_init_is_symmetric_and_explains_the_rest():
    model = mlp(depth=3, width=64)
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
    report = _check(model, experiments=True)
    [finding] = findings_named(report, "symmetric-init")
    assert finding.location.layer == "0"
    assert finding.evidence["layers"] == ["0", "2", "4"]
    explained = {line.split(":")[0] for line in finding.evidence["also_explains"]}
    assert {"dead-relu", "cannot-overfit-tiny-batch"} <= explained
    assert finding.severity is Severity.ERROR  # it explains an error
    assert {f.name for f in report.findings if f.severity >= Severity.WARNING} == {"symmetric-init"}


def test_zero_initialized_output_layer_alone_is_fine():
    model = mlp(depth=3, width=64)
    nn.init.zeros_(model[-1].weight)
    assert findings_named(_check(model), "symmetric-init") == []


def test_constant_init_is_symmetric():
    model = mlp(depth=2, width=64)
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, 0.05)
    assert findings_named(_check(model), "symmetric-init")


# -- dead-relu ------------------------------------------------------------------------------------
def test_large_negative_bias_kills_relu_units():
    model = mlp(depth=2, width=64)
    nn.init.constant_(model[2].bias, -5.0)
    [finding] = findings_named(_check(model), "dead-relu")
    assert finding.location.layer == "3"
    assert finding.evidence["dead_fraction_by_layer"]["3"] > 0.9


def test_healthy_relu_layers_and_tiny_batches_are_quiet():
    assert findings_named(_check(mlp(depth=3, width=64)), "dead-relu") == []
    x, y = blobs(2)  # two samples: "never active" would be chance, not evidence
    model = mlp(depth=2, width=64)
    nn.init.constant_(model[2].bias, -5.0)
    assert findings_named(_check(model, x, y), "dead-relu") == []


# -- saturated-activation ---------------------------------------------------------------------
def test_tanh_with_huge_init_saturates():
    model = mlp(depth=3, width=128, act=nn.Tanh)
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=1.0)
    [finding] = findings_named(_check(model), "saturated-activation")
    assert finding.evidence["saturated_fraction_by_layer"]["3"] > 0.5
    assert "xavier_normal_" in finding.fix


def test_xavier_tanh_and_default_sigmoid_are_quiet():
    model = mlp(depth=3, width=128, act=nn.Tanh)
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight, gain=nn.init.calculate_gain("tanh"))
    assert findings_named(_check(model), "saturated-activation") == []
    assert findings_named(_check(mlp(depth=3, act=nn.Sigmoid)), "saturated-activation") == []


def test_init_checks_run_on_watch_too():
    model = mlp(depth=2, width=64)
    nn.init.constant_(model[2].bias, -5.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = blobs(64)
    with babysit.watch(model, opt) as sitter:
        for _ in range(2):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    assert findings_named(sitter.report, "dead-relu")
