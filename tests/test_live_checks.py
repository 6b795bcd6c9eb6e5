"""The live checks (issue 4) on real training loops under ``babysit.watch``: each fires on a
loop with the bug and stays silent on the same loop without it."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pytest
import torch
from conftest import findings_named
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import babysit
from babysit.trace import Trace


@dataclass
class Loop:
    """A plain epoch loop with a validation pass; each flag injects one bug."""

    n_train: int = 1024
    width: int = 64
    epochs: int = 6
    lr: float = 0.05
    zero_grad: bool = True
    eval_mode: bool = True
    validate: bool = True
    shuffled_val_labels: bool = False
    accumulate: int = 1
    dropout: float = 0.1

    def run(self, **watch_args):
        torch.manual_seed(0)
        weights = torch.randn(20, 10)

        def data(n: int):
            x = torch.randn(n, 20)
            return x, (x @ weights + 0.5 * torch.randn(n, 10)).argmax(1)

        x, y = data(self.n_train)
        xv, yv = data(512)
        if self.shuffled_val_labels:
            yv = yv[torch.randperm(len(yv))]
        train = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
        val = DataLoader(TensorDataset(xv, yv), batch_size=128)
        model = nn.Sequential(
            nn.Linear(20, self.width),
            nn.ReLU(),
            nn.Dropout(self.dropout),
            nn.Linear(self.width, 10),
        )
        optimizer = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=0.9)
        with babysit.watch(model, optimizer, **watch_args) as sitter:
            for _ in range(self.epochs):
                model.train()
                for i, (xb, yb) in enumerate(train):
                    loss = F.cross_entropy(model(xb), yb) / self.accumulate
                    loss.backward()
                    if (i + 1) % self.accumulate == 0:
                        optimizer.step()
                        if self.zero_grad:
                            optimizer.zero_grad()
                if not self.validate:
                    continue
                if self.eval_mode:
                    model.eval()
                with torch.no_grad():
                    for xb, yb in val:
                        F.cross_entropy(model(xb), yb)
        return sitter


LIVE = [
    "train-val-gap",
    "validation-at-chance",
    "no-validation",
    "train-mode-during-eval",
    "loss-diverging",
    "loss-not-decreasing",
    "update-ratio-off",
    "unstable-gradients",
    "gradients-not-reset",
]


@pytest.fixture(scope="module")
def clean():
    return Loop().run()


def test_a_clean_loop_gets_no_live_finding(clean):
    report = clean.report
    assert [f.name for f in report.findings if f.name in LIVE] == []


def test_the_trace_records_epochs_validation_passes_and_gradients(clean):
    trace = clean.trace
    assert [e["epoch"] for e in trace.epochs] == [1, 2, 3, 4, 5, 6]
    assert all(e["end_step"] - e["start_step"] == 32 for e in trace.epochs)
    assert len(trace.evals) == 6
    assert all(e["batches"] == 4 and e["source"] == "loss" for e in trace.evals)
    # each pass is paired with the training loss of the epoch before it
    for epoch, evaluation in zip(trace.epochs, trace.evals, strict=True):
        assert evaluation["train_loss"] == pytest.approx(epoch["train_loss"], rel=1e-5)
        assert evaluation["val_loss"] < math.log(10)
    sample = trace.gradients[-1]["layers"]
    assert set(sample) == {"0", "3"}
    for layer in sample.values():
        assert 0 < layer["update_norm"] / layer["param_norm"] < 0.1
        assert layer["grad_norm"] > 0 and layer["grad_abs_mean"] > 0
    checks = trace.run["grad_reset_checks"]
    assert checks and all(c["held_norm"] == 0.0 for c in checks)
    again = Trace.from_json(trace.to_json())
    assert again.evals == trace.evals and again.gradients == trace.gradients


def test_gradients_not_reset_fires_without_zero_grad():
    report = Loop(zero_grad=False, epochs=3, lr=0.01).run().report
    [finding] = findings_named(report, "gradients-not-reset")
    assert finding.severity.value == "error"
    assert finding.evidence["steps_with_held_gradient"] >= 1
    assert "zero_grad" in finding.fix


def test_gradient_accumulation_is_not_a_missing_zero_grad():
    report = Loop(accumulate=4, epochs=3).run().report
    assert findings_named(report, "gradients-not-reset") == []


def test_train_mode_during_eval_names_the_dropout_and_the_line():
    report = Loop(eval_mode=False, epochs=2).run().report
    [finding] = findings_named(report, "train-mode-during-eval")
    assert finding.evidence["modules_in_training_mode"] == ["2"]
    assert finding.location.file.endswith("test_live_checks.py")
    assert finding.location.line is not None
    assert "model.eval()" in finding.fix


def test_update_bn_in_training_mode_under_no_grad_is_deliberate():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(TensorDataset(torch.randn(64, 4)), batch_size=16)
    with babysit.watch(model, optimizer) as sitter:
        for _ in range(3):
            model(torch.randn(16, 4)).sum().backward()
            optimizer.step()
            optimizer.zero_grad()
        torch.optim.swa_utils.update_bn(loader, model)
    assert sitter.trace.events == []


def test_loss_diverging_fires_on_a_far_too_high_learning_rate():
    report = Loop(lr=5.0, epochs=3).run().report
    [finding] = findings_named(report, "loss-diverging")
    assert finding.severity.value == "error"
    assert finding.evidence["lr"] == 5.0
    assert "lr=0.5" in finding.fix
    assert not findings_named(report, "validation-at-chance")  # NaN is not "at chance"


def test_a_too_low_learning_rate_gets_update_ratio_off_with_a_multiplier():
    report = Loop(lr=1e-7, epochs=4).run().report
    [finding] = findings_named(report, "update-ratio-off")
    assert finding.evidence["median_update_ratio"] < 1e-5
    assert finding.evidence["suggested_lr_multiplier"] > 1e3
    # the flat loss is a consequence: folded in, not a second finding
    assert not findings_named(report, "loss-not-decreasing")
    assert any("loss-not-decreasing" in item for item in finding.evidence["also_explains"])


def test_loss_not_decreasing_alone_when_no_cause_is_known():
    sitter = Loop(lr=1e-7, epochs=4).run()
    report = babysit.judge(sitter.trace, ignore=["update-ratio-off"])
    [finding] = findings_named(report, "loss-not-decreasing")
    assert abs(finding.evidence["relative_change"]) < 0.01
    assert "chance level" in finding.message


def test_overfitting_gets_early_stopping_advice():
    report = Loop(n_train=256, width=512, epochs=40, dropout=0.0).run().report
    [finding] = findings_named(report, "train-val-gap")
    assert finding.evidence["kind"] == "overfitting"
    best = finding.evidence["best_epoch"]
    assert 2 <= best < 30
    assert f"epoch {best}" in finding.message
    assert "weight_decay" in finding.fix


def test_validation_at_chance_fires_when_validation_labels_are_shuffled():
    report = Loop(shuffled_val_labels=True, epochs=4).run().report
    [finding] = findings_named(report, "validation-at-chance")
    assert finding.evidence["train_loss"] < 0.5 * finding.evidence["chance_loss"]
    assert not findings_named(report, "train-val-gap")  # explained by memorization


def test_no_validation_fires_after_three_epochs_without_a_pass():
    report = Loop(validate=False, epochs=3).run().report
    [finding] = findings_named(report, "no-validation")
    assert finding.evidence["epochs"] == 3
    assert findings_named(Loop(validate=False, epochs=2).run().report, "no-validation") == []


def test_sitter_log_val_loss_counts_as_validation():
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,))), 16)
    with babysit.watch(model, optimizer) as sitter:
        for epoch in range(3):
            for x, y in loader:
                optimizer.zero_grad()
                F.cross_entropy(model(x), y).backward()
                optimizer.step()
            sitter.log(val_loss=torch.tensor(0.5 - 0.1 * epoch))
    assert [e["source"] for e in sitter.trace.evals] == ["log"] * 3
    assert sitter.trace.evals[-1]["val_loss"] == pytest.approx(0.3)
    assert findings_named(sitter.report, "no-validation") == []


def test_unstable_gradients_fires_on_a_deep_sigmoid_stack():
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(12):
        layers += [nn.Linear(64, 64), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(256, 64), torch.randint(0, 10, (256,))
    with babysit.watch(model, optimizer, overhead_budget=None) as sitter:
        for _ in range(30):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
    report = babysit.judge(sitter.trace, select=["unstable-gradients"])
    [finding] = report.findings
    assert finding.location.layer == "0"
    assert finding.evidence["first_last_ratio"] < 1e-3


def test_a_parameter_left_out_of_the_optimizer_is_not_a_missing_zero_grad():
    backbone, head = nn.Linear(8, 8), nn.Linear(8, 2)
    model = nn.Sequential(backbone, nn.ReLU(), head)
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1)  # backbone trainable, not optimized
    with babysit.watch(model, optimizer, overhead_budget=None, sample_every=2) as sitter:
        for _ in range(10):
            optimizer.zero_grad()
            F.cross_entropy(model(torch.randn(16, 8)), torch.randint(0, 2, (16,))).backward()
            optimizer.step()
    checks = sitter.trace.run["grad_reset_checks"]
    assert checks and all(c["layer"] == "2" and c["held_norm"] == 0.0 for c in checks)
    assert findings_named(sitter.report, "gradients-not-reset") == []


def test_loss_diverging_catches_an_explosion_at_the_first_step():
    # Lightning's lr-too-high example: 2.30 at init, thousands from step 1 on
    trace = Trace(mode="watch", steps=[{"step": 0, "loss": 2.30}])
    trace.steps += [{"step": s, "loss": 3290.0 - s} for s in range(1, 40)]
    [finding] = babysit.judge(trace, select=["loss-diverging"]).findings
    assert finding.evidence["start_loss"] == 2.30
    assert finding.evidence["end_loss"] > 1000


def test_audit_max_epochs_stops_after_the_validation_of_the_last_epoch():
    from conftest import EXAMPLES
    from typer.testing import CliRunner

    from babysit.cli import app

    script = str(EXAMPLES / "train_val_classifier.py")
    args = ["audit", script, "--max-steps", "0", "--max-epochs", "2", "--no-preflight"]
    result = CliRunner().invoke(app, [*args, "--format", "json", "--", "--n-train", "2048"])
    data = json.loads(result.stdout)
    assert data["run"]["stopped_by"] == "max_epochs (2)"
    assert data["run"]["epochs"] == 2
    assert result.exit_code == 0, data["findings"]


def test_a_long_run_keeps_bounded_histories_and_still_judges(monkeypatch):
    """Per-sample histories are halved when they reach their cap (here shrunk so that a short
    run reaches it): step 0 and the newest samples stay, and the thinned trace is judged."""
    from babysit.probes import recorder

    monkeypatch.setattr(recorder, "MAX_HISTORY", 32)
    monkeypatch.setattr(recorder, "RECENT_HISTORY", 8)
    monkeypatch.setattr(recorder, "DENSE_STEPS", 50)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
    steps = 400
    with babysit.watch(model, optimizer, sample_every=1, overhead_budget=None) as sitter:
        for _ in range(steps):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
    trace = sitter.trace
    sampled = [g["step"] for g in trace.gradients]
    assert 16 <= len(sampled) < 32
    assert sampled[0] == 0 and sampled[-8:] == list(range(steps - 8, steps))
    assert sampled == sorted(set(sampled))
    records = [r["step"] for r in trace.steps]
    assert records[:50] == list(range(50))  # the dense part is never thinned
    assert len(records) - 50 < 32 and records[-1] == steps - 1
    checks = trace.run["grad_reset_checks"]
    assert len(checks) < 32 and checks[-1]["step"] == steps - 1
    # the thinned trace is judged like any other: this healthy run stays quiet
    loud = [f for f in sitter.report.findings if f.severity.value in ("error", "warning")]
    assert loud == [], loud


def test_the_pre_step_hook_is_attached_for_sampled_steps_only():
    from torch.optim.optimizer import _global_optimizer_pre_hooks

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    before = len(_global_optimizer_pre_hooks)
    attached = []
    with babysit.watch(model, optimizer, sample_every=4, overhead_budget=None) as sitter:
        for _ in range(12):
            attached.append(len(_global_optimizer_pre_hooks) - before)
            optimizer.zero_grad()
            F.cross_entropy(model(torch.randn(16, 8)), torch.randint(0, 3, (16,))).backward()
            optimizer.step()
    assert attached == [1, 0, 0, 0] * 3
    assert len(_global_optimizer_pre_hooks) == before
    # the weights were still copied before each sampled step: update ratios at 0, 4, 8
    assert [g["step"] for g in sitter.trace.gradients] == [0, 4, 8]
    assert all(
        "update_norm" in layer for g in sitter.trace.gradients for layer in g["layers"].values()
    )
