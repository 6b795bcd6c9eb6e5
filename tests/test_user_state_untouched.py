"""The user's model, optimizer, RNG, modes and requires_grad are left exactly as found, and no
hook or wrapper stays installed, after check(), watch() and audit, also when user code raises."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch
from conftest import SmallCNN, blobs, mlp
from torch import nn
from typer.testing import CliRunner

import babysit
from babysit.cli import app


def snapshot(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict:
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "training": {name: m.training for name, m in model.named_modules()},
        "requires_grad": {name: p.requires_grad for name, p in model.named_parameters()},
        "grads": {
            name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()
        },
        "hooks": {
            name: (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for name, m in model.named_modules()
        },
        "optimizer": copy.deepcopy(optimizer.state_dict()) if optimizer else None,
        "rng": (torch.get_rng_state().clone(), np.random.get_state()[1].copy(), random.getstate()),
    }


def assert_same(before: dict, after: dict) -> None:
    assert before["state"].keys() == after["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(value, after["state"][key]), key
    assert before["training"] == after["training"]
    assert before["requires_grad"] == after["requires_grad"]
    for key, grad in before["grads"].items():
        other = after["grads"][key]
        assert (grad is None) == (other is None), key
        if grad is not None:
            assert torch.equal(grad, other), key
    assert before["hooks"] == after["hooks"]
    assert torch.equal(before["rng"][0], after["rng"][0])
    assert np.array_equal(before["rng"][1], after["rng"][1])
    assert before["rng"][2] == after["rng"][2]
    if before["optimizer"] is not None:
        assert repr(before["optimizer"]["param_groups"]) == repr(after["optimizer"]["param_groups"])


def _model_with_everything() -> tuple[nn.Module, torch.optim.Optimizer]:
    model = nn.Sequential(
        nn.Linear(20, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 10)
    )
    model[0].weight.requires_grad_(False)  # a deliberately frozen parameter
    model.eval()  # an unusual mode the user chose
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    x, y = blobs(64)
    model.train()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()  # optimizer state exists
    model.eval()
    return model, opt


@pytest.mark.usefixtures("no_leftover_hooks")
def test_check_leaves_everything_untouched():
    model, opt = _model_with_everything()
    x, y = blobs(64)
    before = snapshot(model, opt)
    report = babysit.check(model, x, y, loss_fn=nn.CrossEntropyLoss(), optimizer=opt)
    # every experiment trained, stepped or backpropagated through a copy
    for name in ("gradients", "batch_mixing", "overfit", "regularization"):
        assert "skipped" not in report.trace.experiments[name], name
    assert_same(before, snapshot(model, opt))


@pytest.mark.usefixtures("no_leftover_hooks")
def test_check_leaves_everything_untouched_when_the_model_raises():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(20, 10)

        def forward(self, x):
            raise RuntimeError("user bug")

    model = Broken()
    x, y = torch.randn(4, 20), torch.zeros(4, dtype=torch.long)
    before = snapshot(model)
    with pytest.raises(babysit.BabysitError, match="user bug"):
        babysit.check(model, x, y, loss_fn=nn.CrossEntropyLoss())
    assert_same(before, snapshot(model))


@pytest.mark.usefixtures("no_leftover_hooks")
def test_watch_removes_everything_and_changes_no_mode_or_rng():
    model = SmallCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 4, (16,))
    hooks_before = snapshot(model)["hooks"]
    torch.manual_seed(123)
    with babysit.watch(model, opt, sample_every=1):
        for _ in range(3):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    after_watch = torch.rand(3)
    # the same loop without babysit consumes the RNG identically
    model2 = SmallCNN()
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.1)
    torch.manual_seed(123)
    for _ in range(3):
        opt2.zero_grad()
        nn.functional.cross_entropy(model2(x), y).backward()
        opt2.step()
    assert torch.equal(after_watch, torch.rand(3))
    assert snapshot(model)["hooks"] == hooks_before
    assert model.training


@pytest.mark.usefixtures("no_leftover_hooks")
def test_watch_training_is_numerically_identical_to_bare_training():
    def train(observe: bool):
        torch.manual_seed(0)
        model = mlp()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x, y = blobs(64)
        ctx = babysit.watch(model, opt, sample_every=1) if observe else None
        if ctx:
            ctx.__enter__()
        try:
            for _ in range(5):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
        finally:
            if ctx:
                ctx.__exit__(None, None, None)
        return model.state_dict()

    bare, watched = train(False), train(True)
    for key in bare:
        assert torch.equal(bare[key], watched[key]), key


@pytest.mark.usefixtures("no_leftover_hooks")
def test_watch_cleans_up_when_the_loop_raises():
    model = mlp()
    before = snapshot(model)
    with pytest.raises(KeyError), babysit.watch(model):
        model(torch.randn(4, 20))
        raise KeyError("user bug")
    after = snapshot(model)
    assert after["hooks"] == before["hooks"]


@pytest.mark.usefixtures("no_leftover_hooks")
def test_audit_cleans_up_after_a_crashing_script(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text(
        "import torch\n"
        "model = torch.nn.Linear(4, 2)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "x, y = torch.randn(8, 4), torch.zeros(8, dtype=torch.long)\n"
        "loss = torch.nn.functional.cross_entropy(model(x), y)\n"
        "loss.backward(); opt.step()\n"
        "raise RuntimeError('boom')\n"
    )
    result = CliRunner().invoke(app, ["audit", str(script)])
    assert result.exit_code == 4
