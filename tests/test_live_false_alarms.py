"""Correct training scripts in styles the live checks first misread, each next to the buggy twin
that must still be caught. Each case is a compact version of a script that was audited in full."""

from __future__ import annotations

import json
import math
import textwrap

import pytest
import torch
from conftest import findings_named
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
from typer.testing import CliRunner

import babysit
from babysit.cli import app
from babysit.curves import chance_loss
from babysit.trace import Trace

LIVE = {
    "train-mode-during-eval",
    "loss-diverging",
    "loss-not-decreasing",
    "update-ratio-off",
    "unstable-gradients",
    "gradients-not-reset",
    "train-val-gap",
    "validation-at-chance",
    "no-validation",
}


def _loud(report) -> set[str]:
    return {f.name for f in report.findings if f.severity.value in ("error", "warning")}


def _audit(tmp_path, source: str) -> dict:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(source))
    args = ["audit", str(script), "--max-steps", "0", "--no-preflight", "--format", "json"]
    result = CliRunner().invoke(app, args)
    return json.loads(result.stdout)


def _data(n: int, seed: int, features: int = 20, classes: int = 10):
    generator = torch.Generator().manual_seed(seed)
    weights = torch.randn(features, classes, generator=torch.Generator().manual_seed(123))
    x = torch.randn(n, features, generator=generator)
    return x, (x @ weights + 0.5 * torch.randn(n, classes, generator=generator)).argmax(1)


def _loaders(n: int = 512, batch_size: int = 32):
    train = DataLoader(TensorDataset(*_data(n, 0)), batch_size=batch_size, shuffle=True)
    val = DataLoader(TensorDataset(*_data(256, 1)), batch_size=128)
    return train, val


def _mlp(dropout: float = 0.1) -> nn.Sequential:
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Dropout(dropout), nn.Linear(64, 10))


# -- GAN: two models, two optimizers ------------------------------------------------------------

GAN = """
import torch
from torch import nn
torch.manual_seed(0)
real = torch.randn(1024, 2) * torch.tensor([0.5, 2.0]) + torch.tensor([1.0, -1.0])
loader = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(real), batch_size=64, shuffle=True)
G = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
D = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
optD = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
optG = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
crit = nn.BCEWithLogitsLoss()
for epoch in range(4):
    for (x,) in loader:
        fake = G(torch.randn(x.shape[0], 8))
        {zero_d}
        ones, zeros = torch.ones(x.shape[0], 1), torch.zeros(x.shape[0], 1)
        (crit(D(x), ones) + crit(D(fake.detach()), zeros)).backward()
        optD.step()
        optG.zero_grad()
        crit(D(fake), ones).backward()  # flows back through D too: zeroed before D's next loss
        optG.step()
"""


def test_a_gan_is_neither_missing_zero_grad_nor_flat_nor_unvalidated(tmp_path):
    data = _audit(tmp_path, GAN.format(zero_d="optD.zero_grad()"))
    loud = {f["name"] for f in data["findings"] if f["severity"] in ("error", "warning")}
    assert loud == set(), data["findings"]
    checks = data["run"]["grad_reset_checks"]
    # the generator's backward finds the discriminator's gradient; the reset comes before D's
    assert checks and all(c["held_norm"] == 0.0 and c["backwards"] == 2 for c in checks)


def test_a_gan_whose_discriminator_is_never_zeroed_is_caught(tmp_path):
    data = _audit(tmp_path, GAN.format(zero_d="pass"))
    loud = {f["name"] for f in data["findings"] if f["severity"] in ("error", "warning")}
    assert loud == {"gradients-not-reset"}, data["findings"]


def test_a_gan_step_under_watch_checks_every_backward_before_the_step():
    torch.manual_seed(0)
    G, D = nn.Linear(4, 2), nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    opt_d, opt_g = torch.optim.SGD(D.parameters(), lr=0.01), torch.optim.SGD(G.parameters(), 0.01)
    with babysit.watch(D, opt_d, overhead_budget=None) as sitter:
        for _ in range(6):
            fake = G(torch.randn(16, 4))
            opt_d.zero_grad()
            D(fake.detach()).mean().backward()
            opt_d.step()
            opt_g.zero_grad()
            (-D(fake).mean()).backward()
            opt_g.step()
    assert findings_named(sitter.report, "gradients-not-reset") == []


# -- Monte-Carlo dropout ------------------------------------------------------------------------


def _mc_dropout(model_eval: bool):
    train, val = _loaders(256)
    model = nn.Sequential(
        nn.Linear(20, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with babysit.watch(model, optimizer) as sitter:
        for x, y in train:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        if model_eval:
            model.eval()
            model[3].train()  # sample dropout masks, keep BatchNorm's running statistics
        with torch.no_grad():
            for x, _ in val:
                torch.stack([model(x).softmax(1) for _ in range(5)]).mean(0)
    return sitter.report


def test_monte_carlo_dropout_after_model_eval_is_deliberate():
    assert findings_named(_mc_dropout(model_eval=True), "train-mode-during-eval") == []


def test_the_same_sampling_without_model_eval_is_caught():
    [finding] = findings_named(_mc_dropout(model_eval=False), "train-mode-during-eval")
    assert set(finding.evidence["modules_in_training_mode"]) == {"1", "3"}


# -- validation the loss probe cannot see, or of a model it does not watch ------------------------


def _hand_validated(validate: bool):
    torch.manual_seed(0)
    x, w = torch.randn(512, 8), torch.randn(8, 1)
    y, xv = x @ w, torch.randn(128, 8)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with babysit.watch(model, optimizer) as sitter:
        for _ in range(4):
            model.train()
            for a, b in loader:
                optimizer.zero_grad()
                (model(a) - b).pow(2).mean().backward()  # a loss written by hand
                optimizer.step()
            if validate:
                model.eval()
                with torch.no_grad():
                    (model(xv) - xv @ w).pow(2).mean()
    return sitter


def test_a_validation_loss_written_by_hand_is_a_validation():
    sitter = _hand_validated(validate=True)
    assert sitter.trace.run["eval_forwards"] == 4
    assert findings_named(sitter.report, "no-validation") == []
    assert findings_named(_hand_validated(validate=False).report, "no-validation")


def _ema_run(validate_ema: bool):
    train, val = _loaders(256)
    model = _mlp()
    ema = torch.optim.swa_utils.AveragedModel(model)  # no trainable parameter: never watched
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with babysit.watch(model, optimizer) as sitter:
        for _ in range(3):
            model.train()
            for x, y in train:
                optimizer.zero_grad()
                out = model(x)
                F.cross_entropy(out, y).backward()
                optimizer.step()
                ema.update_parameters(model)
                with torch.no_grad():
                    F.cross_entropy(out, y)  # the training loss again, for a progress bar
            if validate_ema:
                ema.eval()
                with torch.no_grad():
                    for x, y in val:
                        F.cross_entropy(ema(x), y)
    return sitter


def test_an_ema_copy_validated_on_a_held_out_loader_is_a_validation_pass():
    sitter = _ema_run(validate_ema=True)
    assert [e["batches"] for e in sitter.trace.evals] == [2, 2, 2]
    assert all(e["val_loss"] < math.log(10) for e in sitter.trace.evals)
    assert _loud(sitter.report) & LIVE == set()


def test_a_training_loss_recomputed_without_gradients_is_still_no_validation():
    sitter = _ema_run(validate_ema=False)
    assert sitter.trace.evals == []
    assert findings_named(sitter.report, "no-validation")


# -- the step clock follows the optimizer that steps ---------------------------------------------


def test_an_optimizer_rebuilt_every_epoch_keeps_the_step_clock():
    train, val = _loaders(256)
    model = _mlp()
    with babysit.watch(model) as sitter:
        for epoch in range(4):
            optimizer = torch.optim.SGD(model.parameters(), lr=0.05 * 0.8**epoch, momentum=0.9)
            model.train()
            for x, y in train:
                optimizer.zero_grad()
                F.cross_entropy(model(x), y).backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                for x, y in val:
                    F.cross_entropy(model(x), y)
    # 8 steps per epoch; each new optimizer takes over at its third step
    assert sitter.trace.run["steps"] == 8 + 3 * 6
    assert [e["batches"] for e in sitter.trace.evals] == [2] * 4
    assert _loud(sitter.report) & LIVE == set()


# -- a fine-tuned model that already fits its data ---------------------------------------------


def _fine_tune(lr: float, pretrain_epochs: int):
    torch.manual_seed(0)
    train, _ = _loaders(1024)
    model = _mlp()
    warm = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(pretrain_epochs):  # the checkpoint, trained before the watched run
        for x, y in train:
            warm.zero_grad()
            F.cross_entropy(model(x), y).backward()
            warm.step()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    with babysit.watch(model, optimizer) as sitter:
        for _ in range(4):
            for x, y in train:
                optimizer.zero_grad()
                F.cross_entropy(model(x), y).backward()
                optimizer.step()
    return sitter.report


def test_fine_tuning_a_fit_model_at_a_small_lr_is_not_a_flat_loss():
    report = _fine_tune(lr=2e-5, pretrain_epochs=10)
    curve = [s["loss"] for s in report.trace.steps]
    assert curve[0] < 0.5 * math.log(10)  # starts fit: the data's noise floor
    assert findings_named(report, "loss-not-decreasing") == []


def test_a_flat_loss_from_a_fresh_model_is_still_reported():
    x, y = _data(256, 0)
    model = _mlp(dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-7)
    with babysit.watch(model, optimizer) as sitter:
        for _ in range(60):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
    report = babysit.judge(sitter.trace, ignore=["update-ratio-off"])
    assert findings_named(report, "loss-not-decreasing")


# -- chance level from tiny batches, and a loss pushed above guessing -----------------------------


def _classification_events(batches: list[list[int]], classes: int = 10) -> list[dict]:
    events = []
    for labels in batches:
        counts = [float(labels.count(c)) for c in range(classes)]
        events.append(
            {
                "step": 0,
                "kind": "cross_entropy",
                "training": True,
                "num_classes": classes,
                "class_counts": counts,
                "num_targets": len(labels),
                "reduction": "mean",
                "target_shape": [len(labels)],
            }
        )
    return events


def test_chance_level_from_batches_of_two_is_not_underestimated():
    trace = Trace(mode="watch", losses=_classification_events([[0, 1], [2, 3], [4, 4]]))
    assert chance_loss(trace) == pytest.approx(math.log(10))  # not the 1.6 nats of 6 labels
    balanced = _classification_events([list(range(10)) * 3] * 3)
    assert chance_loss(Trace(mode="watch", losses=balanced)) == pytest.approx(math.log(10))


def test_a_regression_chance_level_from_batches_of_two_is_bessel_corrected():
    event = {"kind": "mse_loss", "training": True, "target_shape": [2, 1], "target_var": 0.5}
    event |= {"target_second_moment": 0.5, "num_targets": 2, "step": 0}
    assert chance_loss(Trace(mode="watch", losses=[event] * 3)) == pytest.approx(1.0)


def _rising_trace(end: float, reduction: str = "mean") -> Trace:
    events = _classification_events([list(range(10)) * 3] * 3)
    for event in events:
        event["reduction"] = reduction
    steps = [{"step": 0, "loss": 2.3}] + [{"step": s, "loss": 1.8} for s in range(1, 60)]
    steps += [{"step": s, "loss": end} for s in range(60, 100)]
    return Trace(mode="watch", steps=steps, losses=events)


def test_a_classifier_pushed_above_guessing_is_diverging():
    [finding] = babysit.judge(_rising_trace(3.2), select=["loss-diverging"]).findings
    assert finding.evidence["uniform_loss"] == pytest.approx(math.log(10), rel=1e-4)
    assert "lr=" in finding.fix or "learning rate" in finding.fix
    assert babysit.judge(_rising_trace(2.2), select=["loss-diverging"]).findings == []
    # summed losses are not on the scale of ln C
    assert babysit.judge(_rising_trace(3.2, "sum"), select=["loss-diverging"]).findings == []


def test_label_smoothing_is_overfit_above_its_floor():
    from conftest import blobs, mlp

    x, y = blobs(64)
    report = babysit.check(mlp(), x, y, loss_fn=nn.CrossEntropyLoss(label_smoothing=0.1))
    assert findings_named(report, "cannot-overfit-tiny-batch") == []
    broken = nn.Sequential(mlp(), nn.Softmax(dim=1))  # cannot reach the floor either
    report = babysit.check(broken, x, y, loss_fn=nn.CrossEntropyLoss(label_smoothing=0.1))
    assert findings_named(report, "cannot-overfit-tiny-batch")


MULTI_TASK = """
import torch
from torch import nn
from torch.nn import functional as F

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 32), nn.ReLU())
        self.cls = nn.Linear(32, 3)
        self.reg = nn.Linear(32, 1)

    def forward(self, x):
        h = self.body(x)
        return self.cls(h), self.reg(h)

torch.manual_seed(0)
x = torch.randn(256, 8)
y, t = x[:, :3].argmax(1), x[:, 3:4] * 2
model = Net()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for step in range(60):
    i = torch.randint(0, 256, (32,))
    logits, value = model(x[i])
    loss = F.cross_entropy(logits, y[i]) + F.mse_loss(value, t[i])
    opt.zero_grad()
    loss.backward()
    opt.step()
"""


def _audit_with_preflight(tmp_path, source: str) -> dict:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(source))
    result = CliRunner().invoke(app, ["audit", str(script), "--max-steps", "0", "-f", "json"])
    return json.loads(result.stdout)


def test_a_multi_task_loss_is_not_missing_gradients_in_the_replay(tmp_path):
    data = _audit_with_preflight(tmp_path, MULTI_TASK)
    assert data["experiments"]["gradients"].get("skipped") is None
    assert data["run"]["training_losses_per_forward"] == 2
    loud = {f["name"] for f in data["findings"] if f["severity"] in ("error", "warning")}
    assert "parameters-without-gradient" not in loud, data["findings"]
    # parameters left out of the optimizer are still reported
    partial = MULTI_TASK.replace(
        "torch.optim.Adam(model.parameters(), lr=1e-2)",
        "torch.optim.Adam([*model.body.parameters(), *model.cls.parameters()], lr=1e-2)",
    )
    data = _audit_with_preflight(tmp_path, partial)
    [finding] = [f for f in data["findings"] if f["name"] == "parameters-without-gradient"]
    assert finding["evidence"]["not_in_optimizer"] == ["reg.weight", "reg.bias"]


def test_update_bn_over_the_training_loader_is_not_an_epoch():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    loader = DataLoader(data, batch_size=16)
    with babysit.watch(model, optimizer) as sitter:
        for _ in range(2):
            for xb, yb in loader:
                optimizer.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                optimizer.step()
        torch.optim.swa_utils.update_bn(loader, model)
    assert [e["epoch"] for e in sitter.trace.epochs] == [1, 2]
