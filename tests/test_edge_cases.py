"""Edge cases found in review: several models, frozen parts, samplers, empty batches, half
precision, slow learners, and bad input that must get a clear BabysitError."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SmallCNN, blobs, findings_named, mlp
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import babysit
from babysit import BabysitError, Severity


def _train(model, opt, batches, params_model=None):
    for x, y in batches:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def test_two_models_with_the_same_layer_names_are_kept_apart():
    a, b = mlp(depth=1, width=32), mlp(depth=1, width=32, in_features=10)
    opt = torch.optim.SGD(a.parameters(), lr=0.1)
    x, y = blobs(32)
    session = babysit.watch(a, opt, sample_every=1, overhead_budget=None)
    with session as sitter:
        sitter.session.add_model(b)
        for _ in range(2):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(a(x), y) + b(x[:, :10]).mean() * 0
            loss.backward()
            opt.step()
    layers = sitter.trace.layers
    assert layers["0"]["fan_in"] == 20
    assert layers["Sequential#2.0"]["fan_in"] == 10
    assert len(layers["0"]["samples"]) == 2  # not mixed with the second model's


FROZEN_BACKBONE = """
import torch
from torch import nn
torch.manual_seed(0)
backbone = nn.Sequential(nn.Linear(20, 32), nn.ReLU())
backbone.requires_grad_(False)
head = nn.Linear(32, 4)
opt = torch.optim.Adam(head.parameters(), lr=1e-2)
x, y = torch.randn(64, 20), torch.randint(0, 4, (64,))
for _ in range(5):
    with torch.no_grad():
        feats = backbone(x)
    loss = nn.functional.cross_entropy(head(feats), y)
    opt.zero_grad(); loss.backward(); opt.step()
"""


def test_audit_takes_the_trainable_head_not_the_frozen_backbone(tmp_path):
    from typer.testing import CliRunner

    from babysit.cli import app

    script = tmp_path / "frozen.py"
    script.write_text(FROZEN_BACKBONE)
    result = CliRunner().invoke(app, ["audit", str(script), "--trace", str(tmp_path / "t.json")])
    assert result.exit_code == 0, result.output
    trace = babysit.Trace.load(tmp_path / "t.json")
    assert trace.facts["model"]["class"] == "Linear"
    assert "skipped" not in trace.experiments["overfit"]


def test_distributed_sampler_length_is_used_for_the_trailing_batch():
    data = TensorDataset(torch.randn(65, 3, 8, 8), torch.randint(0, 4, (65,)))
    sampler = DistributedSampler(data, num_replicas=4, rank=0, shuffle=False)  # 17 per rank
    loader = DataLoader(data, batch_size=32, sampler=sampler)
    model = SmallCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with babysit.watch(model, opt) as sitter:
        _train(model, opt, loader)
    assert findings_named(sitter.report, "batchnorm-batch-size-one") == []
    assert sitter.trace.loaders[0]["dataset_len"] == 17


def test_an_empty_batch_does_not_switch_probes_off():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = blobs(32)
    batches = [(x, y), (x[:0], y[:0]), (x, y), (x, y)]
    with babysit.watch(model, opt, sample_every=1, overhead_budget=None) as sitter:
        _train(model, opt, batches)
    assert sitter.trace.errors == []
    assert sitter.trace.steps[-1]["loss"] is not None


def test_half_precision_models_are_trained_in_float32_copies():
    model = mlp(depth=2, width=64).half()
    x, y = blobs(32)
    report = babysit.check(model, x.half(), y, loss_fn=nn.CrossEntropyLoss())
    assert report.trace.experiments["protocol"]["upcast_to_float32"] is True
    assert findings_named(report, "cannot-overfit-tiny-batch") == []
    assert next(model.parameters()).dtype == torch.float16


def test_a_small_model_still_learning_is_info_not_error():
    model = nn.Sequential(nn.Linear(20, 4), nn.ReLU(), nn.Linear(4, 10))  # a tight bottleneck
    x, y = blobs(64)
    report = babysit.check(model, x, y, loss_fn=nn.CrossEntropyLoss(), budget=30)
    for finding in findings_named(report, "cannot-overfit-tiny-batch"):
        run = report.trace.experiments["overfit"]
        if run["accuracy"] == 1.0 and not run["plateaued"]:
            assert finding.severity is Severity.INFO


def test_integer_count_features_are_not_called_pixels():
    counts = torch.randint(0, 6, (64, 20)).float()  # bag-of-words style
    report = babysit.check(
        mlp(), counts, torch.randint(0, 10, (64,)), loss_fn=nn.CrossEntropyLoss(), experiments=False
    )
    assert all("pixel" not in f.message for f in report.findings)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, x, y: babysit.check(m, x), "no loss"),
        (lambda m, x, y: babysit.check(m, x[:0], y[:0], loss_fn=nn.CrossEntropyLoss()), "empty"),
        (lambda m, x, y: babysit.check(m, x, y, loss_fn=lambda o, t: 1.0), "scalar tensor"),
        (
            lambda m, x, y: babysit.check(m, x, y, loss_fn=nn.CrossEntropyLoss(reduction="none")),
            "scalar tensor",
        ),
        (
            lambda m, x, y: babysit.check(
                m, x, y, loss_fn=nn.CrossEntropyLoss(), thresholds={"BS101": {"ratio_above": "big"}}
            ),
            "number",
        ),
        (
            lambda m, x, y: babysit.check(m, x, y, loss_fn=nn.CrossEntropyLoss(), select=101),
            "selectors",
        ),
        (
            lambda m, x, y: babysit.check(m, x, y, loss_fn=nn.CrossEntropyLoss(), budget=-1),
            "budget",
        ),
        (
            lambda m, x, y: babysit.check(
                m,
                x,
                y,
                loss_fn=nn.CrossEntropyLoss(),
                optimizer=torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1),
            ),
            "optimizer",
        ),
        (lambda m, x, y: babysit.watch(m, ignore=101), "selectors"),
    ],
)
def test_bad_input_is_a_clear_error(call, message):
    x, y = blobs(16)
    with pytest.raises(BabysitError, match=message):
        call(mlp(), x, y)


def test_meta_models_are_refused():
    with torch.device("meta"):
        model = mlp()
    with pytest.raises(BabysitError, match="meta"):
        babysit.watch(model)


def test_log_accepts_numpy_numbers():
    with babysit.watch(mlp()) as sitter:
        sitter.log(val_loss=np.float32(0.5), val_acc=np.float64(0.9))
    assert sitter.trace.metrics[0]["val_loss"] == pytest.approx(0.5)


def test_experiments_rebuild_the_optimizer_with_the_learning_rate_the_run_started_with():
    from babysit.experiments import OptimizerSpec

    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    # a linear decay to 0, as the Hugging Face Trainer's default schedule ends
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / 3))
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == 0.0
    rebuilt = OptimizerSpec.of(optimizer, model).build(nn.Linear(4, 2))
    assert rebuilt.param_groups[0]["lr"] == 0.1
    assert "initial_lr" not in rebuilt.param_groups[0]
