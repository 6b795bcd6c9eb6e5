from __future__ import annotations

import torch
from conftest import SmallCNN, blobs, findings_named, mlp
from torch import nn

import babysit
from babysit import Severity

NAME = "unnormalized-inputs"


def _images(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 16, 16), generator=g).float()


def test_quiet_on_standardized_features():
    x, y = blobs()
    report = babysit.check(mlp(), x, y, loss_fn=nn.CrossEntropyLoss(), experiments=False)
    assert findings_named(report, NAME) == []
    assert NAME in report.checks_run


def test_quiet_on_normalized_images():
    raw = _images()
    mean = raw.mean(dim=(0, 2, 3), keepdim=True)
    std = raw.std(dim=(0, 2, 3), keepdim=True)
    y = torch.randint(0, 4, (32,))
    report = babysit.check(
        SmallCNN(), (raw - mean) / std, y, loss_fn=nn.CrossEntropyLoss(), experiments=False
    )
    assert findings_named(report, NAME) == []


def test_fires_on_raw_pixels_and_suggests_normalize_values():
    y = torch.randint(0, 4, (32,))
    report = babysit.check(
        SmallCNN(), _images(), y, loss_fn=nn.CrossEntropyLoss(), experiments=False
    )
    [finding] = findings_named(report, NAME)
    assert finding.severity is Severity.WARNING
    assert "raw 0–255 pixel" in finding.message
    assert len(finding.evidence["per_feature_mean"]) == 3  # per channel
    assert "x = x / 255.0" in finding.fix
    assert "Normalize(mean=[0.4" in finding.fix or "Normalize(mean=[0.5" in finding.fix


def test_fires_on_features_with_wildly_different_scales():
    x, y = blobs()
    x = x.clone()
    x[:, 0] = x[:, 0] * 5000 + 40000  # "income"
    x[:, 1] = x[:, 1] * 0.001  # a ratio
    report = babysit.check(mlp(), x, y, loss_fn=nn.CrossEntropyLoss(), experiments=False)
    [finding] = findings_named(report, NAME)
    assert "large scale" in finding.message
    assert "different scales" in finding.message
    assert finding.evidence["per_feature_mean"][0] > 30000


def test_fires_on_large_offsets():
    x, y = blobs()
    report = babysit.check(mlp(), x + 8.0, y, loss_fn=nn.CrossEntropyLoss(), experiments=False)
    [finding] = findings_named(report, NAME)
    assert "far from zero" in finding.message


def test_images_in_unit_range_are_info_only():
    y = torch.randint(0, 4, (32,))
    report = babysit.check(
        SmallCNN(), _images() / 255.0, y, loss_fn=nn.CrossEntropyLoss(), experiments=False
    )
    [finding] = findings_named(report, NAME)
    assert finding.severity is Severity.INFO
    assert report.ok


def test_integer_token_ids_are_ignored():
    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(1000, 32)
            self.out = nn.Linear(32, 5)

        def forward(self, ids):
            return self.out(self.emb(ids)).mean(1)

    ids = torch.randint(0, 1000, (16, 12))
    y = torch.randint(0, 5, (16,))
    report = babysit.check(Tagger(), ids, y, loss_fn=nn.CrossEntropyLoss(), experiments=False)
    assert findings_named(report, NAME) == []
    assert report.trace.inputs[0]["floating"] is False
