from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT
from typer.testing import CliRunner

from babysit.cli import app

runner = CliRunner()

TRAIN = textwrap.dedent(
    """
    import argparse, sys
    import torch
    from torch import nn

    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--exit", type=int, default=None)
    parser.add_argument("--crash", action="store_true")
    parser.add_argument("--output", default=None)  # same name as a babysit option
    args = parser.parse_args()
    print("script args:", sys.argv[1:])

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(64, 8) * args.scale
    y = torch.randint(0, 4, (64,))
    for step in range(args.steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if args.crash and step == 2:
            raise RuntimeError("diverged on purpose")
    print("trained", args.steps, "steps")
    if args.exit is not None:
        sys.exit(args.exit)
    """
)


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(TRAIN)
    return path


def test_clean_script_exits_0_and_passes_output_and_arguments_through(script):
    result = runner.invoke(app, ["audit", str(script), "--", "--steps", "3", "--output", "x"])
    assert result.exit_code == 0, result.output
    assert "script args: ['--steps', '3', '--output', 'x']" in result.output
    assert "trained 3 steps" in result.output
    assert "✗" not in result.output  # nothing at warning or above


def test_options_after_the_script_are_babysit_options(script):
    result = runner.invoke(app, ["audit", str(script), "--max-steps", "2", "--", "--steps", "9"])
    assert result.exit_code == 0, result.output
    assert "stopped by max_steps (2)" in result.output
    assert "trained" not in result.output  # the budget ended the script


def test_findings_set_exit_code_by_fail_on(script):
    args = ["audit", str(script), "--", "--scale", "300"]
    assert runner.invoke(app, [*args[:2], "--fail-on", "error", *args[2:]]).exit_code == 0
    result = runner.invoke(app, [*args[:2], "--fail-on", "warning", *args[2:]])
    assert result.exit_code == 1
    assert "unnormalized-inputs" in result.output
    assert runner.invoke(app, [*args[:2], "--fail-on", "never", *args[2:]]).exit_code == 0


def test_json_report_on_stdout_stays_parseable(script):
    result = runner.invoke(app, ["audit", str(script), "--format", "json", "--", "--scale", "300"])
    # CliRunner mixes stderr into output unless told apart; stdout alone must be JSON
    data = json.loads(result.stdout)
    assert data["schema"] == 1
    assert data["summary"]["warning"] >= 1
    assert "trained 5 steps" in result.stderr


def test_output_file(script, tmp_path):
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["audit", str(script), "-f", "json", "-o", str(out)])
    assert result.exit_code == 0
    findings = json.loads(out.read_text())["findings"]
    assert [f for f in findings if f["severity"] != "info"] == []


def test_crashing_script_gives_partial_report_and_exit_4(script):
    result = runner.invoke(app, ["audit", str(script), "--", "--crash"])
    assert result.exit_code == 4
    assert "RuntimeError: diverged on purpose" in result.stderr
    assert "babysit" in result.stdout  # the report was still printed


@pytest.mark.parametrize(("code", "expected"), [(0, 0), (3, 4)])
def test_sys_exit_inside_the_script(script, code, expected):
    result = runner.invoke(app, ["audit", str(script), "--", "--exit", str(code)])
    assert result.exit_code == expected


def test_usage_errors_exit_2(script, tmp_path):
    assert runner.invoke(app, ["audit", str(tmp_path / "missing.py")]).exit_code == 2
    bad = runner.invoke(app, ["audit", str(script), "--select", "BS999"])
    assert bad.exit_code == 2
    assert "matches no check" in bad.stderr
    assert runner.invoke(app, ["audit", str(script), "--fail-on", "loud"]).exit_code == 2
    assert runner.invoke(app, ["explain", "no-such-check"]).exit_code == 2


def test_checks_lists_the_catalog():
    result = runner.invoke(app, ["checks", "--format", "json"])
    assert result.exit_code == 0
    names = {c["name"] for c in json.loads(result.stdout)}
    assert {
        "loss-at-init-not-chance",
        "activation-variance-unstable",
        "unnormalized-inputs",
        "batchnorm-batch-size-one",
    } <= names


@pytest.mark.parametrize("key", ["BS101", "bs101", "loss-at-init-not-chance"])
def test_explain_prints_the_documentation(key):
    result = runner.invoke(app, ["explain", key])
    assert result.exit_code == 0
    for section in ("What it does", "Why is this bad?", "Fix", "Thresholds", "References"):
        assert section in result.stdout


def test_saved_trace_is_judged_again_the_same(script, tmp_path):
    trace = tmp_path / "trace.json"
    first = runner.invoke(
        app, ["audit", str(script), "-f", "json", "--trace", str(trace), "--", "--scale", "300"]
    )
    again = runner.invoke(app, ["report", str(trace), "-f", "json"])
    assert json.loads(first.stdout)["findings"] == json.loads(again.stdout)["findings"]
    ignored = runner.invoke(app, ["report", str(trace), "-f", "json", "--ignore", "BS2"])
    assert all(f["id"] != "BS201" for f in json.loads(ignored.stdout)["findings"])


def test_report_rejects_a_file_that_is_not_a_trace(tmp_path):
    bogus = tmp_path / "x.json"
    bogus.write_text("[1, 2]")
    result = runner.invoke(app, ["report", str(bogus)])
    assert result.exit_code == 2


def test_console_script_end_to_end(script):
    """The installed entry point, in a real subprocess, with the real exit code."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "babysit",
            "audit",
            str(script),
            "--fail-on",
            "warning",
            "--",
            "--scale",
            "300",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "unnormalized-inputs" in proc.stdout
    assert "trained 5 steps" in proc.stdout


HF_STYLE = textwrap.dedent(
    """
    import torch
    from torch import nn

    class TinyLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(50, 32)
            self.head = nn.Linear(32, 50)

        def forward(self, input_ids=None, labels=None):
            logits = self.head(self.emb(input_ids))
            loss = nn.functional.cross_entropy(logits.view(-1, 50), labels.view(-1))
            return {"loss": loss, "logits": logits}

    torch.manual_seed(0)
    model = TinyLM()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, 50, (16, 12))
    for _ in range(4):
        out = model(input_ids=ids, labels=ids)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    """
)


def test_keyword_only_model_that_returns_its_loss_gets_the_protocol(tmp_path):
    script = tmp_path / "lm.py"
    script.write_text(HF_STYLE)
    result = runner.invoke(app, ["audit", str(script), "-f", "json"])
    data = json.loads(result.stdout)
    assert result.exit_code == 0, data["findings"]
    assert data["experiments"]["overfit"] == {"ran": True}
    assert data["experiments"]["batch_mixing"] == {"ran": True}
    assert [f for f in data["findings"] if f["severity"] != "info"] == []


def test_a_script_that_trains_nothing_is_not_called_clean(tmp_path):
    script = tmp_path / "hello.py"
    script.write_text("print('hello')\n")
    result = runner.invoke(app, ["audit", str(script)])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())  # the report wraps long lines
    assert "nothing judged: no model was seen training" in text
    assert "no findings" not in text
