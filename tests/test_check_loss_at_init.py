from __future__ import annotations

import math

import pytest
import torch
from conftest import blobs, findings_named, mlp
from torch import nn

import babysit
from babysit import Severity

NAME = "loss-at-init-not-chance"


def test_quiet_for_default_init_classifier():
    x, y = blobs()
    report = babysit.check(mlp(), x, y, loss_fn=nn.CrossEntropyLoss(), experiments=False)
    assert findings_named(report, NAME) == []
    assert NAME in report.checks_run


def test_fires_when_the_last_layer_is_initialized_large():
    x, y = blobs()
    model = mlp()
    nn.init.normal_(model[-1].weight, std=5.0)
    report = babysit.check(model, x, y, loss_fn=nn.CrossEntropyLoss(), experiments=False)
    [finding] = findings_named(report, NAME)
    assert finding.severity is Severity.WARNING
    evidence = finding.evidence
    assert evidence["chance_loss"] == pytest.approx(math.log(10), rel=1e-4)
    assert evidence["initial_loss"] > 1.5 * math.log(10)
    assert evidence["num_classes"] == 10
    # the fix names the output layer by its module name
    assert 'get_submodule("6")' in finding.fix


def test_functional_loss_and_reduction_sum_are_understood():
    x, y = blobs()
    model = mlp()
    out = model(x)
    report = babysit.check(
        model,
        x,
        y,
        loss_fn=lambda o, t: nn.functional.cross_entropy(o, t, reduction="sum"),
        experiments=False,
    )
    # summed over 256 samples the raw value is ~590, per sample it is ~ln(10)
    assert out.shape == (256, 10)
    assert findings_named(report, NAME) == []
    assert report.trace.losses[0]["reduction"] == "sum"


def test_binary_cross_entropy_chance_is_ln2():
    x, _ = blobs()
    y = (x[:, 0] > 0).float().unsqueeze(1)
    model = mlp(classes=1)
    quiet = babysit.check(model, x, y, loss_fn=nn.BCEWithLogitsLoss(), experiments=False)
    assert findings_named(quiet, NAME) == []
    nn.init.normal_(model[-1].weight, std=3.0)
    loud = babysit.check(model, x, y, loss_fn=nn.BCEWithLogitsLoss(), experiments=False)
    [finding] = findings_named(loud, NAME)
    assert finding.evidence["chance_loss"] == pytest.approx(math.log(2), rel=1e-4)


def test_mse_against_the_loss_of_predicting_zero():
    x, _ = blobs()
    y = torch.randn(len(x), 1)
    quiet = babysit.check(mlp(classes=1), x, y, loss_fn=nn.MSELoss(), experiments=False)
    assert findings_named(quiet, NAME) == []
    tiny_targets = y * 0.01  # the default-init output is ~50x larger than the targets
    loud = babysit.check(mlp(classes=1), x, tiny_targets, loss_fn=nn.MSELoss(), experiments=False)
    assert len(findings_named(loud, NAME)) == 1


def test_far_below_chance_is_only_info():
    x, y = blobs()
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(100):  # a "pretrained" model
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    report = babysit.check(model, x, y, loss_fn=nn.CrossEntropyLoss(), experiments=False)
    [finding] = findings_named(report, NAME)
    assert finding.severity is Severity.INFO
    assert report.ok


def test_non_finite_initial_loss_is_an_error():
    x, y = blobs()
    model = mlp()
    with torch.no_grad():
        model[-1].bias.fill_(float("inf"))
    report = babysit.check(model, x, y, loss_fn=nn.CrossEntropyLoss(), experiments=False)
    [finding] = findings_named(report, NAME)
    assert finding.severity is Severity.ERROR


def test_imbalanced_classes_use_the_label_prior():
    x, _ = blobs()
    y = torch.zeros(len(x), dtype=torch.long)
    y[:13] = 1  # 95 % class 0
    model = mlp(classes=2)
    report = babysit.check(model, x, y, loss_fn=nn.CrossEntropyLoss(), experiments=False)
    event = report.trace.losses[0]
    assert event["class_counts"] == [243.0, 13.0]
    from babysit.chance import chance_level

    chance = chance_level(report.trace.losses)
    assert chance.prior < 0.25 < chance.uniform


def test_hugging_face_style_output_loss_is_used():
    class WithLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = mlp()

        def forward(self, inputs, labels):
            logits = self.net(inputs)
            return {"logits": logits, "loss": nn.functional.cross_entropy(logits * 30, labels)}

    x, y = blobs()
    report = babysit.check(WithLoss(), {"inputs": x, "labels": y}, experiments=False)
    assert len(findings_named(report, NAME)) == 1
