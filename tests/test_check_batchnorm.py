from __future__ import annotations

import pytest
import torch
from conftest import SmallCNN, findings_named, mlp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import babysit
from babysit import Severity

NAME = "batchnorm-batch-size-one"


def _train(model, loader, epochs=1, max_steps=None):
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with babysit.watch(model, opt) as sitter:
        steps = 0
        for _ in range(epochs):
            for x, y in loader:
                opt.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
                steps += 1
                if max_steps and steps >= max_steps:
                    return sitter.report
    return sitter.report


def _images(n):
    return TensorDataset(torch.randn(n, 3, 8, 8), torch.randint(0, 4, (n,)))


def test_quiet_with_full_batches():
    report = _train(SmallCNN(), DataLoader(_images(64), batch_size=16, shuffle=True))
    assert findings_named(report, NAME) == []
    assert NAME in report.checks_run


def test_trailing_batch_of_one_in_batchnorm2d_is_an_error_with_the_loader_line():
    loader = DataLoader(_images(33), batch_size=16, shuffle=True)  # 16 + 16 + 1
    report = _train(SmallCNN(), loader)
    [finding] = findings_named(report, NAME)
    assert finding.severity is Severity.ERROR
    assert finding.location.layer == "features.1"
    assert finding.location.file.endswith("test_check_batchnorm.py")
    assert finding.evidence["loader_trailing_batch"] == 1
    assert "drop_last=True" in finding.fix


def test_trailing_batch_is_predicted_before_it_is_reached():
    loader = DataLoader(_images(16 * 10 + 1), batch_size=16, shuffle=False)
    report = _train(SmallCNN(), loader, max_steps=3)
    [finding] = findings_named(report, NAME)
    assert "last batch of every epoch has exactly 1 sample" in finding.message


def test_drop_last_silences_the_prediction():
    loader = DataLoader(_images(16 * 4 + 1), batch_size=16, shuffle=True, drop_last=True)
    assert findings_named(_train(SmallCNN(), loader, epochs=2), NAME) == []


def test_batchnorm1d_batch_of_one_crash_is_explained():
    model = mlp(depth=2, batchnorm=True)
    x, y = torch.randn(33, 20), torch.randint(0, 10, (33,))
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    sitter = babysit.watch(model, opt)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"), sitter:
        for xb, yb in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
    [finding] = findings_named(sitter.report, NAME)
    assert finding.severity is Severity.ERROR
    assert "Expected more than 1 value per channel" in finding.message


def test_preflight_batch_of_one_reports_instead_of_crashing():
    model = mlp(depth=2, batchnorm=True)
    report = babysit.check(
        model,
        torch.randn(1, 20),
        torch.tensor([3]),
        loss_fn=nn.CrossEntropyLoss(),
        experiments=False,
    )
    [finding] = findings_named(report, NAME)
    assert "Expected more than 1 value per channel" in finding.message
    assert report.trace.run["error"].startswith("ValueError")


def test_small_batches_warn():
    loader = DataLoader(_images(40), batch_size=4, shuffle=True)
    [finding] = findings_named(_train(SmallCNN(), loader), NAME)
    assert finding.severity is Severity.WARNING
    assert finding.evidence["median_batch"] == 4


def test_preflight_trains_a_copy_and_leaves_an_eval_model_in_eval_mode():
    model = SmallCNN().eval()
    report = babysit.check(
        model,
        torch.randn(1, 3, 8, 8),
        torch.tensor([1]),
        loss_fn=nn.CrossEntropyLoss(),
        experiments=False,
    )
    # check() runs a copy in training mode, where a single sample is a problem
    assert findings_named(report, NAME)
    assert model.training is False
