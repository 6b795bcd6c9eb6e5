from __future__ import annotations

import pytest
import torch
from conftest import blobs, findings_named, init_all, mlp
from torch import nn

import babysit
from babysit import BabysitError


def _train(model, opt, x, y, steps):
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def test_check_accepts_tuple_and_dict_inputs():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(20, 10), nn.Linear(5, 10)

        def forward(self, x, extra):
            return self.a(x) + self.b(extra)

    x, y = blobs(64)
    extra = torch.randn(64, 5)
    for inputs in ((x, extra), {"x": x, "extra": extra}):
        report = babysit.check(TwoInputs(), inputs, y, loss_fn=nn.CrossEntropyLoss())
        assert report.ok
        assert report.trace.losses[0]["num_classes"] == 10


def test_check_with_a_model_that_returns_its_loss():
    class ReturnsLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = mlp()

        def forward(self, x, y):
            return nn.functional.cross_entropy(self.net(x), y)

    x, y = blobs(64)
    report = babysit.check(ReturnsLoss(), (x, y))
    assert report.trace.losses[0]["kind"] == "cross_entropy"


def test_hand_written_loss_is_recorded_without_chance_level():
    x, y = blobs(64)
    report = babysit.check(mlp(), x, y, loss_fn=lambda out, t: (out.logsumexp(1) - 0).mean())
    assert report.trace.losses[0]["kind"] == "model_output"
    assert findings_named(report, "loss-at-init-not-chance") == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "not a model"}, "must be a torch.nn.Module"),
        ({"inputs": 3}, "inputs must be a tensor"),
        ({"loss_fn": 5}, "loss_fn must be callable"),
        ({"optimizer": "adam"}, "optimizer must be a torch.optim.Optimizer"),
        ({"select": ["BS999"]}, "matches no check"),
        ({"thresholds": {"BS101": {"nope": 1}}}, "has no threshold"),
        ({"loss_fn": None}, "pass loss_fn="),
    ],
)
def test_bad_input_gets_a_clear_error(kwargs, message):
    x, y = blobs(16)
    args = {"model": mlp(), "inputs": x, "targets": y, "loss_fn": nn.CrossEntropyLoss()}
    args.update(kwargs)
    with pytest.raises(BabysitError, match=message):
        babysit.check(args.pop("model"), args.pop("inputs"), args.pop("targets"), **args)


def test_thresholds_override_and_select_ignore():
    x, y = blobs()
    model = mlp()
    strict = babysit.check(
        model,
        x + 1.5,
        y,
        loss_fn=nn.CrossEntropyLoss(),
        thresholds={"unnormalized-inputs": {"max_mean_offset": 1.0}},
    )
    assert findings_named(strict, "unnormalized-inputs")[0].severity.value == "warning"
    only = babysit.check(model, x + 8, y, loss_fn=nn.CrossEntropyLoss(), select=["BS1"])
    assert "unnormalized-inputs" not in only.checks_run
    assert findings_named(only, "unnormalized-inputs") == []


def test_ignore_one_check_on_one_layer():
    x, y = blobs()
    model = init_all(mlp(depth=8, width=128), std=0.01)
    report = babysit.check(model, x, y, loss_fn=nn.CrossEntropyLoss())
    layer = findings_named(report, "activation-variance-unstable")[0].location.layer
    quiet = babysit.check(model, x, y, loss_fn=nn.CrossEntropyLoss(), ignore=[f"BS102:{layer}"])
    assert findings_named(quiet, "activation-variance-unstable") == []


def test_watch_records_steps_losses_and_logged_metrics():
    x, y = blobs(64)
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with babysit.watch(model, opt, sample_every=5, overhead_budget=None) as sitter:
        _train(model, opt, x, y, 12)
        sitter.log(val_loss=torch.tensor(0.5), val_acc=0.9)
        mid = sitter.report  # usable mid-run
        assert mid.trace.steps[0]["loss"] is not None
    trace = sitter.report.trace
    assert trace.run["optimizer_steps"] == 12
    assert [s["step"] for s in trace.steps] == list(range(12))
    assert all(isinstance(s["loss"], float) for s in trace.steps)
    assert trace.metrics == [{"step": 12, "val_loss": 0.5, "val_acc": 0.9}]
    sampled = {s["step"] for s in trace.layers["0"]["samples"]}
    assert sampled == {0, 5, 10}
    assert trace.facts["optimizers"][0]["class"] == "Adam"


def test_watch_finds_the_optimizer_by_itself():
    x, y = blobs(64)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    other = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)  # unrelated: ignored
    with babysit.watch(model) as sitter:
        _train(model, opt, x, y, 3)
        other.step()
    assert sitter.report.trace.run["optimizer_steps"] == 3


def test_watch_log_rejects_non_scalars():
    with babysit.watch(mlp()) as sitter, pytest.raises(BabysitError, match="scalar"):
        sitter.log(val=torch.ones(3))


def test_a_failing_probe_disables_itself_and_is_reported(monkeypatch):
    from babysit.probes import inputs

    def boom(*args, **kwargs):
        raise RuntimeError("probe bug")

    monkeypatch.setattr(inputs, "_summarize", boom)
    x, y = blobs(64)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with babysit.watch(model, opt, sample_every=1) as sitter:
        _train(model, opt, x, y, 3)  # training goes on
    report = sitter.report
    [finding] = findings_named(report, "internal-error")
    assert "probe bug" in finding.message
    assert report.exit_code("never") == 3
    assert len(report.trace.errors) == 1  # disabled after the first failure
    assert report.trace.errors[0]["probe"] == "inputs"
    assert report.trace.layers["0"]["samples"]  # the activation probe kept working
