"""Baselines: --write-baseline accepts today's findings, --baseline reports only new ones."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import pytest
import torch
from conftest import ROOT, blobs, mlp
from torch import nn
from typer.testing import CliRunner

import babysit
from babysit.baseline import apply_baseline, fingerprint, load_baseline, write_baseline
from babysit.check import Finding, Location, Severity
from babysit.cli import app
from babysit.errors import BabysitError
from babysit.report import Report
from babysit.reporters.locations import where
from babysit.trace import Trace

runner = CliRunner()
REPORT_SCHEMA = json.loads((ROOT / "docs" / "report.schema.json").read_text())


@pytest.fixture(scope="module")
def broken_trace(tmp_path_factory) -> Path:
    """A real pre-flight with two warnings: dead ReLUs after `3` and unnormalized inputs."""
    torch.manual_seed(0)
    x, y = blobs(64)
    model = mlp()
    with torch.no_grad():
        model[2].bias.fill_(-100.0)
    report = babysit.check(model, x * 50, y, loss_fn=nn.CrossEntropyLoss(), experiments=False)
    assert {"BS105", "BS201"} <= {f.id for f in report.findings}
    path = tmp_path_factory.mktemp("trace") / "trace.json"
    report.trace.save(path)
    return path


@pytest.fixture
def project(tmp_path, broken_trace, monkeypatch) -> Path:
    (tmp_path / "trace.json").write_text(broken_trace.read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    return tmp_path


def finding(check_id="BS105", message="90% dead", layer=None, file=None, line=None) -> Finding:
    location = Location(layer=layer, file=file, line=line) if (layer or file) else None
    return Finding(check_id, "dead-relu", Severity.WARNING, message, "fix it", {}, location)


def report_of(*findings: Finding, mode="audit", target="train.py") -> Report:
    return Report(target, list(findings), Trace(mode=mode, target=target), [], {})


def key(f: Finding, root: Path, report: Report | None = None) -> str:
    return fingerprint(f, where(f, report or report_of(f), root))


# -- fingerprints -------------------------------------------------------------------------------


def test_fingerprints_ignore_measured_numbers_and_runtime_lines(tmp_path):
    base = finding(layer="encoder.3", file=str(tmp_path / "train.py"), line=40)
    assert key(base, tmp_path) == key(dataclasses.replace(base, message="12% dead"), tmp_path)
    moved = dataclasses.replace(
        base, location=Location("encoder.3", str(tmp_path / "train.py"), 41)
    )
    assert key(base, tmp_path) == key(moved, tmp_path)  # code above was edited
    assert key(base, tmp_path) != key(finding(layer="decoder.3", file=base.location.file), tmp_path)
    assert key(base, tmp_path) != key(dataclasses.replace(base, id="BS106"), tmp_path)


def test_static_findings_are_keyed_by_the_text_of_their_line(tmp_path):
    first = finding("BS901", file=str(tmp_path / "train.py"), line=3)
    second = finding("BS901", file=str(tmp_path / "train.py"), line=9)
    here = where(first, report_of(first), tmp_path)
    there = where(second, report_of(second), tmp_path)
    line = "    loss = F.cross_entropy(F.softmax(z, 1), y)"
    # the same line moved down: the same finding; reindented: still the same
    assert fingerprint(first, here, line) == fingerprint(second, there, line)
    assert fingerprint(first, here, line) == fingerprint(second, there, "\t" + line.strip())
    assert fingerprint(first, here, line) != fingerprint(first, here, line + "  # edited")
    # without the text (the file is gone) the line number stands in
    assert fingerprint(first, here) != fingerprint(second, there)


def test_identical_flagged_lines_accept_the_first_ones_in_the_file(tmp_path):
    """Line 6 and line 12 hold the same text; a baseline that recorded one accepts line 6 (the
    lines are compared as numbers: "12" sorts before "6" as text)."""
    lines = ["import torch"] * 14
    lines[5] = lines[11] = "    optimizer.step()"
    trace = Trace(mode="lint", target="train.py")
    trace.sources.append(
        {"path": "train.py", "text": "\x0c\n".join(lines[:3]) + "\n" + "\n".join(lines[3:])}
    )
    six, twelve = (finding("BS903", file="train.py", line=n) for n in (6, 12))
    path = tmp_path / "baseline.json"
    write_baseline(Report("train.py", [six], trace, [], {}), path, root=tmp_path)
    both = Report("train.py", [twelve, six], trace, [], {})
    kept = apply_baseline(both, load_baseline(path), root=tmp_path)
    assert [f.location.line for f in kept.findings] == [12] and kept.baselined == 1


def test_fingerprints_use_paths_relative_to_the_root(tmp_path):
    """The same repository checked out in two places gives the same fingerprints."""
    here, there = tmp_path / "laptop" / "repo", tmp_path / "ci" / "work" / "repo"
    mine = finding(file=str(here / "src" / "train.py"), line=5, layer="fc")
    theirs = finding(file=str(there / "src" / "train.py"), line=5, layer="fc")
    assert key(mine, here) == key(theirs, there)
    assert key(mine, here) != key(theirs, here)  # outside this root: an absolute path


def test_runtime_findings_without_a_file_belong_to_the_audited_script(tmp_path):
    loose = finding(layer="fc")
    one = report_of(loose, target=str(tmp_path / "a.py"))
    other = report_of(loose, target=str(tmp_path / "b.py"))
    assert key(loose, tmp_path, one) != key(loose, tmp_path, other)


# -- write, load, apply -------------------------------------------------------------------------


def test_a_written_baseline_accepts_exactly_its_findings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the audited script, train.py, is here
    old = finding(layer="fc", message="90% dead")
    report = report_of(old, finding("BS201", message="scale 300"))
    path = tmp_path / "baseline.json"
    assert write_baseline(report, path, root=tmp_path) == 2
    document = json.loads(path.read_text())
    assert document["babysit_baseline"] == 2
    assert {e["id"] for e in document["findings"]} == {"BS105", "BS201"}
    assert document["findings"][0]["location"] == {"file": "train.py", "layer": "fc"}

    rerun = report_of(
        dataclasses.replace(old, message="87% dead"),  # the same problem, measured again
        finding("BS201", message="scale 310"),
        finding("BS105", layer="head"),  # new
    )
    kept = apply_baseline(rerun, load_baseline(path), root=tmp_path)
    assert [f.location.layer for f in kept.findings] == ["head"]
    assert kept.baselined == 2
    assert kept.to_dict()["baselined"] == 2
    jsonschema.validate(kept.to_dict(), REPORT_SCHEMA)


def test_each_baseline_entry_accepts_one_finding(tmp_path):
    twice = report_of(finding(layer="fc"), finding(layer="fc"))
    path = tmp_path / "baseline.json"
    write_baseline(report_of(finding(layer="fc")), path, root=tmp_path)
    assert len(apply_baseline(twice, load_baseline(path), root=tmp_path).findings) == 1


def test_without_a_baseline_the_report_says_nothing_about_one():
    assert "baselined" not in report_of(finding()).to_dict()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such baseline file"),
        ("{not json", "is not a babysit baseline"),
        ('{"schema": 1, "findings": []}', "is not a babysit baseline"),
        ('{"babysit_baseline": 1, "findings": [{"id": "BS101"}]}', "'fingerprint'"),
    ],
)
def test_bad_baseline_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "baseline.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(BabysitError, match=message):
        load_baseline(path)


# -- CLI ----------------------------------------------------------------------------------------


def test_cli_write_then_use_a_baseline(project):
    assert runner.invoke(app, ["report", "trace.json", "--fail-on", "warning"]).exit_code == 1
    written = runner.invoke(
        app, ["report", "trace.json", "--fail-on", "warning", "--write-baseline", "base.json"]
    )
    assert written.exit_code == 0, written.output  # today's findings are accepted
    assert "recorded" in written.stderr and "base.json" in written.stderr
    count = len(json.loads((project / "base.json").read_text())["findings"])
    assert count >= 2

    result = runner.invoke(
        app,
        ["report", "trace.json", "-f", "json", "--fail-on", "warning", "--baseline", "base.json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["findings"] == [] and data["baselined"] == count
    assert f"{count} finding(s) accepted by the baseline base.json" in result.stderr
    jsonschema.validate(data, REPORT_SCHEMA)


def test_cli_baseline_reports_new_findings(project):
    # a baseline from a run that only knew the input problem
    runner.invoke(app, ["report", "trace.json", "--select", "BS2", "--write-baseline", "b.json"])
    result = runner.invoke(
        app, ["report", "trace.json", "-f", "sarif", "--fail-on", "warning", "--baseline", "b.json"]
    )
    assert result.exit_code == 1
    run = json.loads(result.stdout)["runs"][0]
    ids = {r["ruleId"] for r in run["results"]}
    assert "BS105" in ids and "BS201" not in ids
    assert run["properties"]["baselined"] == 1


def test_cli_missing_baseline_is_a_usage_error(project):
    result = runner.invoke(app, ["report", "trace.json", "--baseline", "nope.json"])
    assert result.exit_code == 2
    assert "babysit: error: no such baseline file: nope.json" in result.stderr
