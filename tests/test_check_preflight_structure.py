"""parameters-without-gradient, batch-mixing and targets-out-of-range: fires on a real model
with the bug, quiet on the correct twin."""

from __future__ import annotations

import torch
from conftest import SmallCNN, blobs, findings_named, mlp
from torch import nn

import babysit
from babysit import Severity


def _check(model, x=None, y=None, optimizer=None, loss_fn=None, **kwargs):
    if x is None:
        x, y = blobs(64)
    return babysit.check(
        model, x, y, loss_fn=loss_fn or nn.CrossEntropyLoss(), optimizer=optimizer, **kwargs
    )


class Detached(nn.Module):
    def __init__(self, detach=True):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(20, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)
        self.detach = detach

    def forward(self, x):
        h = self.body(x)
        return self.head(h.detach() if self.detach else h)


# -- parameters-without-gradient -----------------------------------------------------------------
def test_detached_body_gets_no_gradient():
    [finding] = findings_named(_check(Detached()), "parameters-without-gradient")
    assert finding.severity is Severity.ERROR
    assert finding.evidence["no_grad"] == ["body.0.weight", "body.0.bias"]
    assert finding.location.layer == "body.0"


def test_connected_twin_is_quiet():
    assert findings_named(_check(Detached(detach=False)), "parameters-without-gradient") == []


def test_unused_layer_and_parameter_missing_from_the_optimizer():
    model = Detached(detach=False)
    model.extra = nn.Linear(3, 3)  # defined, never called
    opt = torch.optim.SGD(model.head.parameters(), lr=0.1)  # forgot the body
    [finding] = findings_named(_check(model, optimizer=opt), "parameters-without-gradient")
    assert finding.evidence["no_grad"] == ["extra.weight", "extra.bias"]
    assert finding.evidence["not_in_optimizer"] == [
        "body.0.weight",
        "body.0.bias",
        "extra.weight",
        "extra.bias",
    ]


def test_zero_learning_rate_leaves_parameters_unchanged():
    model = Detached(detach=False)
    opt = torch.optim.SGD(
        [
            {"params": model.body.parameters(), "lr": 0.0},
            {"params": model.head.parameters(), "lr": 0.1},
        ]
    )
    [finding] = findings_named(_check(model, optimizer=opt), "parameters-without-gradient")
    assert finding.evidence["unchanged_after_step"] == ["body.0.weight", "body.0.bias"]


def test_deliberately_frozen_parameters_are_fine():
    model = Detached(detach=False)
    model.body.requires_grad_(False)
    assert findings_named(_check(model), "parameters-without-gradient") == []
    model.head.requires_grad_(False)
    [finding] = findings_named(_check(model), "parameters-without-gradient")
    assert "nothing will train" in finding.message


def test_bias_before_batchnorm_is_only_info():
    x, y = torch.randn(32, 3, 8, 8), torch.randint(0, 4, (32,))
    report = _check(SmallCNN(), x, y)
    for finding in findings_named(report, "parameters-without-gradient"):
        assert finding.severity is Severity.INFO
        assert "BatchNorm" in finding.message


# -- batch-mixing ------------------------------------------------------------------------------
class Mixer(nn.Module):
    def __init__(self, bug=True):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(2)
        )
        self.head = nn.Linear(32, 4)
        self.bug = bug

    def forward(self, x):
        h = self.features(x)
        h = h.view(h.size(1) * 4, -1).t() if self.bug else h.flatten(1)
        return self.head(h)


def test_view_across_the_batch_is_caught():
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 4, (16,))
    [finding] = findings_named(_check(Mixer(), x, y), "batch-mixing")
    assert finding.severity is Severity.ERROR
    assert finding.evidence["other_samples_max_gradient"] > 0
    assert "flatten(1)" in finding.fix


def test_per_sample_flatten_is_quiet_even_with_batchnorm():
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 4, (16,))
    report = _check(Mixer(bug=False), x, y)
    assert findings_named(report, "batch-mixing") == []
    assert report.trace.experiments["batch_mixing"]["rows"][0]["others_max"] == 0.0


def test_token_models_are_charted_through_the_embedding():
    class Tagger(nn.Module):
        def __init__(self, mix):
            super().__init__()
            self.emb, self.out, self.mix = nn.Embedding(50, 16), nn.Linear(16, 5), mix

        def forward(self, ids):
            h = self.emb(ids)  # (N, T, D)
            if self.mix:
                h = h + h.mean(dim=0, keepdim=True)  # batch statistics leak in
            return self.out(h.mean(1))

    ids, y = torch.randint(0, 50, (8, 6)), torch.randint(0, 5, (8,))
    assert findings_named(_check(Tagger(False), ids, y), "batch-mixing") == []
    [finding] = findings_named(_check(Tagger(True), ids, y), "batch-mixing")
    assert finding.evidence["through"] == "embedding output"


# -- targets-out-of-range ----------------------------------------------------------------------
def test_one_based_labels_are_an_error_even_though_cross_entropy_raises():
    x, y = blobs(64)
    report = _check(mlp(), x, y + 1)  # labels 1..10 for 10 outputs
    [finding] = findings_named(report, "targets-out-of-range")
    assert finding.severity is Severity.ERROR
    assert finding.evidence["target_range"] == [1.0, 10.0]
    assert "y = y - 1" in finding.fix
    assert report.trace.run["error"].startswith("IndexError")


def test_bce_targets_outside_unit_interval():
    x, _ = blobs(64)
    y = torch.where(x[:, :1] > 0, 1.0, -1.0)  # {-1, 1} labels
    report = _check(mlp(classes=1), x, y, loss_fn=nn.BCEWithLogitsLoss())
    [finding] = findings_named(report, "targets-out-of-range")
    assert "outside [0, 1]" in finding.message


def test_valid_targets_and_ignore_index_are_quiet():
    x, y = blobs(64)
    y = y.clone()
    y[:5] = -100  # ignore_index
    assert findings_named(_check(mlp(), x, y), "targets-out-of-range") == []


def test_batch_statistics_in_eval_mode_are_skipped_with_a_reason():
    model = nn.Sequential(
        nn.Linear(20, 32),
        nn.BatchNorm1d(32, track_running_stats=False),
        nn.ReLU(),
        nn.Linear(32, 10),
    )
    report = _check(model)
    assert findings_named(report, "batch-mixing") == []
    assert "track_running_stats=False" in report.skipped["batch-mixing"]
