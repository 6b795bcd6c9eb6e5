"""cannot-overfit-tiny-batch, input-independent-output and regularization-without-effect:
fires on a real model with the bug, quiet on the correct twin."""

from __future__ import annotations

import pytest
import torch
from conftest import SmallCNN, blobs, findings_named, mlp
from torch import nn

import babysit
from babysit import Severity


def _check(model, x=None, y=None, optimizer=None, **kwargs):
    if x is None:
        x, y = blobs(64)
    return babysit.check(model, x, y, loss_fn=nn.CrossEntropyLoss(), optimizer=optimizer, **kwargs)


class SoftmaxHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = mlp(depth=2, width=128)

    def forward(self, x):
        return torch.softmax(self.net(x), dim=1)  # CrossEntropyLoss expects logits


class IgnoresInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = mlp(depth=2, width=128)

    def forward(self, x):
        x = torch.zeros_like(x)  # a debugging leftover
        return self.net(x)


# -- cannot-overfit-tiny-batch -----------------------------------------------------------------
@pytest.mark.parametrize(
    "factory", [lambda: mlp(3, 128), lambda: mlp(8, 128)], ids=["mlp3", "mlp8"]
)
def test_clean_mlps_overfit_the_tiny_batch(factory):
    report = _check(factory())
    assert findings_named(report, "cannot-overfit-tiny-batch") == []
    run = report.trace.experiments["overfit"]
    assert run["reached"] and run["accuracy"] == 1.0
    assert run["samples"] == 8


def test_clean_cnn_overfits_the_tiny_batch():
    x, y = torch.randn(32, 3, 16, 16), torch.randint(0, 4, (32,))
    report = _check(SmallCNN(channels=16), x, y)
    assert findings_named(report, "cannot-overfit-tiny-batch") == []


def test_softmax_before_cross_entropy_cannot_overfit_and_says_why():
    report = _check(SoftmaxHead())
    [finding] = findings_named(report, "cannot-overfit-tiny-batch")
    assert finding.severity is Severity.ERROR
    assert finding.evidence["best_loss"] > 0.5 * finding.evidence["initial_loss"]
    first_cause = finding.fix.split("\n\n")[1]
    assert "probabilities" in first_cause and "Softmax" in first_cause


def test_budget_exhaustion_is_reported_not_judged():
    report = _check(mlp(3, 128), budget=1e-9)
    assert findings_named(report, "cannot-overfit-tiny-batch") == []
    assert "time budget" in report.skipped["cannot-overfit-tiny-batch"]


def test_experiments_can_be_switched_off():
    report = _check(SoftmaxHead(), experiments=False)
    assert report.trace.experiments == {}
    assert "experiment was" not in str(report.skipped)
    assert "cannot-overfit-tiny-batch" in report.skipped


# -- input-independent-output ---------------------------------------------------------------
def test_model_that_ignores_its_input_is_the_root_cause():
    report = _check(IgnoresInput())
    [finding] = findings_named(report, "input-independent-output")
    # it also explains why the tiny batch cannot be overfit: one finding, error severity
    assert findings_named(report, "cannot-overfit-tiny-batch") == []
    assert any(c.startswith("cannot-overfit-tiny-batch") for c in finding.evidence["also_explains"])
    assert finding.severity is Severity.ERROR


def test_model_that_uses_its_input_is_quiet():
    report = _check(mlp(3, 128))
    assert findings_named(report, "input-independent-output") == []
    run = report.trace.experiments["overfit"]
    assert run["zero_input_loss"] > 10 * run["final_loss"]


def test_constant_targets_are_not_judged():
    x, _ = blobs(64)
    report = _check(IgnoresInput(), x, torch.full((64,), 3))
    assert findings_named(report, "input-independent-output") == []


# -- regularization-without-effect -----------------------------------------------------------
def _with_dropout(p, call_it=True):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(20, 256), nn.Linear(256, 10)
            self.drop = nn.Dropout(p)

        def forward(self, x):
            h = torch.relu(self.fc1(x))
            return self.fc2(self.drop(h) if call_it else h)

    return Net()


def test_working_dropout_raises_the_loss_and_is_quiet():
    report = _check(_with_dropout(0.5))
    assert [
        f
        for f in findings_named(report, "regularization-without-effect")
        if f.severity >= Severity.WARNING
    ] == []
    reg = report.trace.experiments["regularization"]
    assert reg["final_loss"] > report.trace.experiments["overfit"]["final_loss"]


def test_dropout_with_p_zero_is_inert():
    [finding] = findings_named(_check(_with_dropout(0.0)), "regularization-without-effect")
    assert finding.severity is Severity.WARNING
    assert "p = 0" in finding.message


def test_dropout_never_called_is_inert():
    [finding] = findings_named(
        _check(_with_dropout(0.5, call_it=False)), "regularization-without-effect"
    )
    assert "never calls them" in finding.message
    assert finding.location.layer == "drop"


def test_no_regularization_at_all_is_info():
    [finding] = findings_named(_check(mlp(2, 64)), "regularization-without-effect")
    assert finding.severity is Severity.INFO


def test_adam_with_l2_weight_decay_gets_the_adamw_note():
    model = mlp(2, 64)
    adam = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    [finding] = findings_named(_check(model, optimizer=adam), "regularization-without-effect")
    assert finding.severity is Severity.INFO and "AdamW" in finding.fix
    adamw = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=5e-4)
    assert findings_named(_check(model, optimizer=adamw), "regularization-without-effect") == []
