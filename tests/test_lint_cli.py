"""`babysit lint`: output, exit codes, formats, selection, malformed input, and static findings
in `babysit report` and `babysit audit`."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
from conftest import ROOT
from typer.testing import CliRunner

from babysit.cli import app

runner = CliRunner()

BUGGY = """\
import torch
import torch.nn.functional as F

def train(model, loader):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
"""
CLEAN = BUGGY.replace(
    "        loss.backward()", "        optimizer.zero_grad()\n        loss.backward()"
)


def lint(*args: str):
    return runner.invoke(app, ["lint", *args])


def test_text_output_is_one_line_per_finding_with_the_position(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(BUGGY)
    result = lint(str(script))
    assert result.exit_code == 1, result.output
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"{script}:9:9: BS903 [error] the loop at line 6")
    assert "  fix: Call `optimizer.zero_grad(set_to_none=True)`" in result.stdout
    assert "Found 1: 1 error in 1 file" in result.stdout


def test_clean_script_exits_zero(tmp_path):
    (tmp_path / "train.py").write_text(CLEAN)
    result = lint(str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "no findings" in result.stdout


def test_json_report_matches_the_schema_with_columns(tmp_path):
    (tmp_path / "train.py").write_text(BUGGY)
    result = lint(str(tmp_path), "--format", "json")
    data = json.loads(result.stdout)
    schema = json.loads((ROOT / "docs" / "report.schema.json").read_text())
    jsonschema.validate(data, schema)
    [finding] = data["findings"]
    assert finding["location"]["line"] == 9 and finding["location"]["column"] == 9
    assert set(data["checks"]["run"]) >= {"missing-zero-grad", "softmax-before-cross-entropy"}
    assert not any(name.startswith("loss-at-init") for name in data["checks"]["run"])


def test_select_ignore_and_fail_on(tmp_path):
    (tmp_path / "train.py").write_text(BUGGY)
    assert lint(str(tmp_path), "--ignore", "BS903").exit_code == 0
    assert lint(str(tmp_path), "--select", "missing-zero-grad").exit_code == 1
    assert lint(str(tmp_path), "--fail-on", "never").exit_code == 0
    nothing_static = lint(str(tmp_path), "--select", "BS1")
    assert nothing_static.exit_code == 2 and "no static rule" in nothing_static.stderr


def test_output_file_and_exclude(tmp_path):
    (tmp_path / "skipme").mkdir()
    (tmp_path / "skipme" / "train.py").write_text(BUGGY)
    out = tmp_path / "report.json"
    result = lint(str(tmp_path), "--exclude", "skipme", "-f", "json", "-o", str(out))
    assert result.exit_code == 0
    assert json.loads(out.read_text())["findings"] == []


def test_missing_path_is_a_usage_error(tmp_path):
    result = lint(str(tmp_path / "nope.py"))
    assert result.exit_code == 2
    assert "babysit: error: no such file or directory" in result.stderr


def test_malformed_files_become_notes_and_the_rest_is_linted(tmp_path):
    (tmp_path / "a_syntax.py").write_text("def broken(:\n    pass\n")
    (tmp_path / "b_latin1.py").write_bytes(b"# caf\xe9\nx = 1\n")
    (tmp_path / "c_nul.py").write_bytes(b"x = 1\x00\n")
    (tmp_path / "d_train.py").write_text(BUGGY)
    result = lint(str(tmp_path))
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "a_syntax.py: not linted: syntax error" in out and "(line 1" in out
    assert "b_latin1.py: skipped: not UTF-8 text" in out
    assert "c_nul.py: not linted" in out
    assert "d_train.py:9:9: BS903" in out


def test_huge_file_is_skipped_with_a_note(tmp_path, monkeypatch):
    from babysit.lint import files

    monkeypatch.setattr(files, "MAX_BYTES", 100)
    (tmp_path / "big.py").write_text("x = 1\n" * 50)
    result = lint(str(tmp_path))
    assert result.exit_code == 0
    assert "big.py: skipped:" in result.stdout and "limit" in result.stdout


def test_a_directory_of_2000_files_runs_and_reports(tmp_path):
    for i in range(2000):
        (tmp_path / f"m{i:04d}.py").write_text(BUGGY if i == 1234 else CLEAN)
    result = lint(str(tmp_path), "-f", "json")
    data = json.loads(result.stdout)
    assert result.exit_code == 1
    assert [f["location"]["file"].rsplit("/", 1)[-1] for f in data["findings"]] == ["m1234.py"]
    assert data["run"]["files"] == 2000


def test_report_rejudges_static_findings_from_a_saved_trace(tmp_path):
    from babysit.lint import lint_trace

    script = tmp_path / "train.py"
    script.write_text(BUGGY)
    trace_file = tmp_path / "trace.json"
    lint_trace([script]).save(trace_file)
    result = runner.invoke(app, ["report", str(trace_file), "--format", "json"])
    data = json.loads(result.stdout)
    assert [f["id"] for f in data["findings"]] == ["BS903"]


def test_python_dash_m_entry_point(tmp_path):
    (tmp_path / "train.py").write_text(BUGGY)
    result = subprocess.run(
        [sys.executable, "-m", "babysit", "lint", "train.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("train.py:9:9: BS903 [error]")


def test_audit_folds_static_findings_of_the_script(tmp_path, monkeypatch):
    from babysit.audit import audit
    from babysit.report import judge

    script = tmp_path / "train.py"
    script.write_text(
        BUGGY
        + "\nmodel = torch.nn.Linear(4, 3)\n"
        + "train(model, [(torch.randn(8, 4), torch.randint(0, 3, (8,)))] * 3)\n"
    )
    monkeypatch.chdir(tmp_path)
    trace, outcome = audit(script, max_steps=3, preflight=False)
    assert outcome.status in ("completed", "stopped")
    assert trace.sources[0]["path"] == "train.py"
    report = judge(trace, select=["BS903"])
    assert [(f.id, f.location.file, f.location.line) for f in report.findings] == [
        ("BS903", "train.py", 9)
    ]
