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


def test_pyproject_settings_apply_to_lint_and_flags_override_them(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(BUGGY)
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "train.py").write_text(BUGGY)
    config = tmp_path / "pyproject.toml"
    config.write_text('[tool.babysit]\nformat = "json"\nfail-on = "never"\nexclude = ["vendor"]\n')
    result = lint(str(tmp_path))
    assert result.exit_code == 0, result.output  # fail-on = "never" from the file
    data = json.loads(result.stdout)  # format = "json" from the file
    assert [f["location"]["file"] for f in data["findings"]] == [f"{tmp_path}/src/train.py"]
    flagged = lint(str(tmp_path), "--fail-on", "error", "--format", "text")
    assert flagged.exit_code == 1 and flagged.stdout.startswith(f"{tmp_path}/src/train.py:9:9")
    config.write_text('[tool.babysit]\nignore = ["BS903", "BS105:encoder"]\n')
    assert lint(str(tmp_path)).exit_code == 0  # the file's ignore, layer ignores left aside


def test_a_config_select_of_runtime_checks_does_not_empty_the_lint(tmp_path):
    (tmp_path / "train.py").write_text(BUGGY)
    (tmp_path / "pyproject.toml").write_text('[tool.babysit]\nselect = ["BS1", "BS2"]\n')
    assert lint(str(tmp_path)).exit_code == 1  # every static rule still runs
    (tmp_path / "pyproject.toml").write_text('[tool.babysit]\nselect = ["BS901"]\n')
    assert lint(str(tmp_path)).exit_code == 0  # a static selection narrows it
    assert lint(str(tmp_path), "--select", "BS903").exit_code == 1  # the flag wins


def test_a_bad_config_is_one_line_and_exit_code_2(tmp_path):
    (tmp_path / "train.py").write_text(CLEAN)
    for bad in ('fail-on = "bogus"', 'format = "xml"', "exclude = 3", 'select = ["BS999"]'):
        (tmp_path / "pyproject.toml").write_text(f"[tool.babysit]\n{bad}\n")
        result = lint(str(tmp_path))
        assert result.exit_code == 2, bad
        assert result.stderr.startswith("babysit: error: ") and "pyproject.toml" in result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_lint_baseline_accepts_todays_findings(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    script = tmp_path / "train.py"
    script.write_text(BUGGY)
    accepted = tmp_path / "baseline.json"
    assert lint(str(script), "--write-baseline", str(accepted)).exit_code == 0
    again = lint(str(script), "--baseline", str(accepted))
    assert again.exit_code == 0 and "1 finding(s) accepted by the baseline" in again.stderr
    script.write_text(BUGGY + "\n\ndef evaluate(model, val_loader):\n" + BUGGY.split("\n", 4)[4])
    new = lint(str(script), "--baseline", str(accepted), "-f", "json")
    assert new.exit_code == 1
    assert [f["location"]["line"] for f in json.loads(new.stdout)["findings"]] == [17]


def test_a_baseline_survives_edits_above_its_findings(tmp_path, monkeypatch):
    """Static findings are matched by the text of their line, not its number: a docstring or
    an import added at the top must not make yesterday's accepted findings new."""
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    script = tmp_path / "train.py"
    script.write_text(BUGGY)
    accepted = tmp_path / "baseline.json"
    assert lint(str(script), "--write-baseline", str(accepted)).exit_code == 0
    before = json.loads(lint(str(script), "-f", "json").stdout)["findings"]
    script.write_text('"""Training script."""\nimport os\n\n' + BUGGY)
    moved = json.loads(lint(str(script), "-f", "json").stdout)["findings"]
    assert [f["location"]["line"] for f in moved] == [f["location"]["line"] + 3 for f in before]
    again = lint(str(script), "--baseline", str(accepted), "-f", "json")
    assert again.exit_code == 0, again.stdout
    assert json.loads(again.stdout)["baselined"] == len(before) == 1
    # the accepted line itself edited: a new finding
    script.write_text(BUGGY.replace("optimizer.step()", "optimizer.step()  # update"))
    edited = lint(str(script), "--baseline", str(accepted), "-f", "json")
    assert edited.exit_code == 1 and len(json.loads(edited.stdout)["findings"]) == 1


def test_a_schema_1_baseline_still_matches_by_line_number(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    script = tmp_path / "train.py"
    script.write_text(BUGGY)
    [found] = json.loads(lint(str(script), "-f", "json").stdout)["findings"]
    line = found["location"]["line"]
    # the formula babysit 0.1 wrote schema-1 files with, spelled out so that it cannot drift
    raw = "\x1f".join([found["id"], "train.py", "", str(line)])
    old_key = hashlib.sha256(raw.encode()).hexdigest()[:24]
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"babysit_baseline": 1, "findings": [{"fingerprint": old_key}]}))
    result = lint(str(script), "--baseline", str(old), "-f", "json")
    assert result.exit_code == 0 and json.loads(result.stdout)["baselined"] == 1


SOFTMAX_CE = "import torch.nn.functional as F\nif True:\n" + (
    "{indent}loss = F.cross_entropy(F.softmax(z, 1), y)\n"
)


def test_bom_line_endings_tabs_and_wide_characters_keep_exact_positions(tmp_path):
    from babysit.lint import lint_trace, static_selection
    from babysit.report import judge

    variants = {
        "bom.py": b"\xef\xbb\xbf" + SOFTMAX_CE.format(indent="    ").encode(),
        "crlf.py": SOFTMAX_CE.format(indent="    ").replace("\n", "\r\n").encode(),
        "cr.py": SOFTMAX_CE.format(indent="    ").replace("\n", "\r").encode(),
        "tab.py": SOFTMAX_CE.format(indent="\t").encode(),
        "wide.py": SOFTMAX_CE.format(indent='    s = "é😀"; ').encode(),
    }
    for name, data in variants.items():
        (tmp_path / name).write_bytes(data)
    trace = lint_trace([tmp_path])
    assert trace.notes == []
    report = judge(trace, select=static_selection(["BS901"]))
    found = {
        f.location.file.rsplit("/", 1)[-1]: (f.location.line, f.location.column)
        for f in report.findings
    }
    # columns count characters: a tab is one, "é" and "😀" are one each, the BOM is none
    assert found == {
        "bom.py": (3, 12),
        "crlf.py": (3, 12),
        "cr.py": (3, 12),
        "tab.py": (3, 9),
        "wide.py": (3, 22),
    }


def test_symlink_loops_dangling_links_and_fifos_neither_hang_nor_abort(tmp_path):
    import os

    (tmp_path / "train.py").write_text(BUGGY)
    (tmp_path / "loop").mkdir()
    (tmp_path / "loop" / "up").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "loop" / "self").symlink_to(tmp_path / "loop", target_is_directory=True)
    (tmp_path / "dangling.py").symlink_to(tmp_path / "nowhere.py")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.py")  # reading it would block forever
    result = lint(str(tmp_path))
    assert result.exit_code == 1, result.output
    assert result.stdout.count("BS903") == 1  # the loops are not followed
    assert "dangling.py: skipped: cannot read it" in result.stdout
    if hasattr(os, "mkfifo"):
        assert "pipe.py: skipped: not a regular file" in result.stdout


def test_deeply_nested_code_is_a_note_and_code_at_the_limit_is_linted(tmp_path):
    import gc

    from babysit.lint.analysis import MAX_NESTING

    chain = "x = model(x)" + ".view(-1)" * 1200 + "\n"  # parses, too deep to walk
    (tmp_path / "a_chain.py").write_text(chain)
    (tmp_path / "b_sum.py").write_text("x = " + " + ".join(["a"] * (MAX_NESTING + 50)) + "\n")
    terms = " + ".join(["F.mse_loss(a, b)"] * (MAX_NESTING - 10))
    (tmp_path / "c_train.py").write_text(
        "import torch.nn.functional as F\ntotal = 0\nfor a, b in loader:\n"
        f"    loss = {terms}\n    loss.backward()\n    total += loss\n"
    )
    result = lint(str(tmp_path), "-f", "json")
    data = json.loads(result.stdout)
    assert [n.split(": ", 1)[0] for n in data["notes"]] == [
        f"{tmp_path}/a_chain.py",
        f"{tmp_path}/b_sum.py",
    ]
    assert all("too deeply nested" in n for n in data["notes"])
    assert [(f["id"], f["location"]["line"]) for f in data["findings"]] == [("BS907", 6)]
    assert gc.isenabled()  # the collector paused while building trees is back on


def test_many_training_loops_in_one_file_lint_in_linear_time(tmp_path):
    import time

    from babysit.lint import lint_trace
    from babysit.report import judge

    body = "".join(
        f"def step{i}(model, loader, opt):\n    for x, y in loader:\n        opt.zero_grad()\n"
        "        model(x).sum().backward()\n        opt.step()\n\n"
        for i in range(4000)
    )
    (tmp_path / "generated.py").write_text(body)
    trace = lint_trace([tmp_path / "generated.py"])
    start = time.perf_counter()
    report = judge(trace, select=["BS903"])
    assert report.findings == []
    assert time.perf_counter() - start < 10  # pairwise loop comparisons took minutes
