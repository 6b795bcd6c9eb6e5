"""SARIF, JUnit and GitHub Actions output: valid against the real schemas, paths relative to
the source root, counts and escaping right."""

from __future__ import annotations

import dataclasses
import json
import os
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
import torch
import xmlschema
from conftest import blobs, mlp
from torch import nn
from typer.testing import CliRunner

import babysit
from babysit import registry
from babysit.check import Finding, Location, Severity
from babysit.cli import app
from babysit.report import Report
from babysit.reporters import github, junit, render, sarif
from babysit.trace import Trace

DATA = Path(__file__).parent / "data"
SARIF_SCHEMA = json.loads((DATA / "sarif-schema-2.1.0.json").read_text())
JUNIT_SCHEMA = xmlschema.XMLSchema(DATA / "junit.xsd")
runner = CliRunner()

HAS_COLUMN = "column" in {f.name for f in dataclasses.fields(Location)}

SCRIPT = textwrap.dedent(
    """
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(64, 8) * 300  # unnormalized inputs: BS201
    y = torch.randint(0, 4, (64,))
    for step in range(4):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    """
)


def assert_valid_sarif(document: dict) -> None:
    validator = jsonschema.Draft7Validator(
        SARIF_SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(document), key=str)
    assert not errors, "\n".join(e.message for e in errors[:5])


def assert_valid_junit(text: str) -> ET.Element:
    JUNIT_SCHEMA.validate(text)
    return ET.fromstring(text)


@pytest.fixture(scope="module")
def checked() -> Report:
    """A real pre-flight of a broken model: a dead ReLU layer and inputs on a large scale."""
    torch.manual_seed(0)
    x, y = blobs(64)
    model = mlp()
    with torch.no_grad():
        model[2].bias.fill_(-100.0)
    report = babysit.check(model, x * 50, y, loss_fn=nn.CrossEntropyLoss(), experiments=False)
    assert {"dead-relu", "unnormalized-inputs"} <= {f.name for f in report.findings}
    return report


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> tuple[Path, Path]:
    """A real `babysit audit` of a script in a git work tree; returns (root, trace file)."""
    root = tmp_path_factory.mktemp("repo")
    (root / ".git").mkdir()
    (root / "src").mkdir()
    script = root / "src" / "train.py"
    script.write_text(SCRIPT)
    trace = root / "trace.json"
    old = Path.cwd()
    os.chdir(root)
    try:
        result = runner.invoke(
            app,
            [
                "audit",
                str(script),
                "--max-steps",
                "3",
                "--preflight-budget",
                "5",
                "--trace",
                str(trace),
                "--fail-on",
                "never",
            ],
        )
    finally:
        os.chdir(old)
    assert result.exit_code == 0, result.output
    return root, trace


def synthetic(root: Path, mode: str = "lint") -> Report:
    """Findings with files inside and outside ``root``, lines, a layer, awkward characters."""
    inside = str(root / "pkg" / "model,v2.py")
    column = {"column": 7} if HAS_COLUMN else {}
    findings = [
        Finding(
            "BS101",
            "loss-at-init-not-chance",
            Severity.ERROR,
            "Loss 9.1 at init, chance is 2.3 | 100% off",
            "Zero the last layer.\nThen rerun.",
            {"loss": 9.1},
            Location(file=inside, line=12, **column),
        ),
        Finding(
            "BS105",
            "dead-relu",
            Severity.WARNING,
            "90% of units dead after `3`",
            "Lower the bias.",
            {"dead": 0.9},
            Location(layer="encoder.3"),
        ),
        Finding(
            "BS501",
            "train-val-gap",
            Severity.INFO,
            "Gap of 0.2",
            "More data.",
            {},
            Location(file="/elsewhere/outside.py", line=3),
        ),
    ]
    trace = Trace(mode=mode, target="pkg")
    return Report(
        "pkg",
        findings,
        trace,
        ["loss-at-init-not-chance", "dead-relu"],
        {"batch-mixing": "no experiments.batch mixing recorded"},
    )


# -- SARIF --------------------------------------------------------------------------------------


def test_sarif_of_a_real_audit_is_valid_and_points_at_the_script_relative_to_the_repo(audited):
    root, trace = audited
    result = runner.invoke(
        app, ["report", str(trace), "--format", "sarif"], env={"GITHUB_WORKSPACE": str(root)}
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert_valid_sarif(document)
    run = document["runs"][0]
    assert document["version"] == "2.1.0" and len(document["runs"]) == 1
    driver = run["tool"]["driver"]
    assert driver["name"] == "babysit" and driver["version"] == babysit.__version__
    results = run["results"]
    assert "BS201" in {r["ruleId"] for r in results}
    for item in results:
        physical = item["locations"][0]["physicalLocation"]
        # the runtime finding has no line of its own: it points at the audited script, line 1
        assert physical["artifactLocation"] == {"uri": "src/train.py", "uriBaseId": "%SRCROOT%"}
        assert physical["region"]["startLine"] >= 1
        assert driver["rules"][item["ruleIndex"]]["id"] == item["ruleId"]
    assert run["invocations"][0]["executionSuccessful"] is True


def test_sarif_rules_cover_the_checks_that_ran_with_docs_from_the_registry(checked):
    document = sarif.to_sarif(checked)
    assert_valid_sarif(document)
    rules = {r["id"]: r for r in document["runs"][0]["tool"]["driver"]["rules"]}
    ran = {registry.get(name).id for name in checked.checks_run}
    assert set(rules) == ran | {f.id for f in checked.findings}
    dead = rules["BS105"]
    check = registry.get("dead-relu")
    assert dead["name"] == "dead-relu"
    assert dead["shortDescription"]["text"] == check.summary
    assert dead["fullDescription"]["text"] == check.doc_sections()["What it does"]
    assert "## Fix" in dead["help"]["markdown"] and dead["help"]["text"]
    assert dead["defaultConfiguration"]["level"] == "warning"
    assert "babysit" in dead["properties"]["tags"]
    levels = {r["ruleId"]: r["level"] for r in document["runs"][0]["results"]}
    assert levels["BS105"] == "warning" and levels["BS102"] == "note"


def test_sarif_layer_findings_get_a_logical_location(checked):
    results = sarif.to_sarif(checked)["runs"][0]["results"]
    dead = next(r for r in results if r["ruleId"] == "BS105")
    logical = dead["locations"][0]["logicalLocations"][0]
    assert logical["fullyQualifiedName"] == "3" and logical["kind"] == "module"
    # babysit.check() has no script: no physical location to invent
    assert "physicalLocation" not in dead["locations"][0]
    finding = next(f for f in checked.findings if f.id == "BS105")
    assert dead["message"]["text"] == f"{finding.message}\n\nFix: {finding.fix}"


def test_sarif_uris_are_relative_to_the_root_and_absolute_outside_it(tmp_path):
    document = sarif.to_sarif(synthetic(tmp_path), root=tmp_path)
    assert_valid_sarif(document)
    results = {r["ruleId"]: r for r in document["runs"][0]["results"]}
    inside = results["BS101"]["locations"][0]["physicalLocation"]
    assert inside["artifactLocation"] == {"uri": "pkg/model%2Cv2.py", "uriBaseId": "%SRCROOT%"}
    assert inside["region"]["startLine"] == 12
    if HAS_COLUMN:
        assert inside["region"]["startColumn"] == 7
    outside = results["BS501"]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert outside == {"uri": "file:///elsewhere/outside.py"}
    assert results["BS101"]["level"] == "error" and results["BS501"]["level"] == "note"
    base = document["runs"][0]["originalUriBaseIds"]["%SRCROOT%"]["uri"]
    assert base == tmp_path.resolve().as_uri() + "/"


def test_sarif_fingerprints_ignore_numbers_but_not_layers(tmp_path):
    report = synthetic(tmp_path)
    first = report.findings[1]
    remeasured = dataclasses.replace(first, message="70% of units dead after `3`")
    elsewhere = dataclasses.replace(first, location=Location(layer="decoder.3"))

    def key(finding):
        variant = dataclasses.replace(report, findings=[finding])
        result = sarif.to_sarif(variant, root=tmp_path)["runs"][0]["results"][0]
        return result["partialFingerprints"][sarif.FINGERPRINT_KEY]

    assert key(first) == key(remeasured)
    assert key(first) != key(elsewhere)


def test_sarif_fingerprints_follow_the_line_text_and_count_identical_lines(tmp_path):
    from babysit.lint import lint_trace
    from babysit.report import judge

    loop = "for x, y in loader:\n    F.cross_entropy(model(x), y).backward()\n    opt.step()\n"
    script = tmp_path / "train.py"

    def keys(text):
        script.write_text(text)
        report = judge(lint_trace([script]))
        results = sarif.to_sarif(report, root=tmp_path)["runs"][0]["results"]
        ordered = sorted(
            results, key=lambda r: r["locations"][0]["physicalLocation"]["region"]["startLine"]
        )
        return [r["partialFingerprints"][sarif.FINGERPRINT_KEY] for r in ordered]

    header = "import torch.nn.functional as F\n"
    twice = keys(header + loop + loop)
    assert len(twice) == 2 and twice[0] != twice[1]  # two loops, two alerts
    assert [k.rsplit(":", 1)[1] for k in twice] == ["1", "2"]
    # code added above does not change them
    assert keys('"""Train."""\n\n' + header + loop + loop) == twice


def test_sarif_marks_the_run_unsuccessful_when_babysit_itself_failed(tmp_path):
    report = synthetic(tmp_path)
    report.trace.errors.append({"probe": "activations", "error": "RuntimeError: boom"})
    invocation = sarif.to_sarif(report, root=tmp_path)["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert "boom" in invocation["toolExecutionNotifications"][0]["message"]["text"]


# -- JUnit --------------------------------------------------------------------------------------


def test_junit_of_a_real_check_is_valid_with_one_case_per_check(checked):
    root = assert_valid_junit(junit.render(checked, fail_on="warning"))
    suite = root.find("testsuite")
    assert suite.get("name") == "babysit"
    cases = suite.findall("testcase")
    assert len(cases) == len(checked.checks_run) + len(checked.skipped)
    assert int(suite.get("tests")) == len(cases)
    assert int(suite.get("skipped")) == len(checked.skipped)
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    loud = {f"{f.id} {f.name}" for f in checked.findings if f.severity >= Severity.WARNING}
    assert failed == loud and int(suite.get("failures")) == len(loud)
    assert {c.get("classname") for c in cases} == {"babysit.check"}
    dead = next(c for c in cases if c.get("name") == "BS105 dead-relu")
    failure = dead.find("failure")
    assert failure.get("type") == "warning"
    assert "fix: " in failure.text and "layer 3" in failure.text
    info = next(c for c in cases if c.get("name") == "BS102 activation-variance-unstable")
    assert info.find("failure") is None and "activation" in info.find("system-out").text
    name, reason = next(iter(checked.skipped.items()))
    skipped = next(c for c in cases if c.get("name") == f"{registry.get(name).id} {name}")
    assert skipped.find("skipped").get("message") == reason


@pytest.mark.parametrize(("fail_on", "failures"), [("never", 0), ("error", 1), ("info", 3)])
def test_junit_counts_follow_fail_on(tmp_path, fail_on, failures):
    report = synthetic(tmp_path)
    root = assert_valid_junit(junit.render(report, fail_on=fail_on, root=tmp_path))
    suite = root.find("testsuite")
    assert int(suite.get("failures")) == failures == int(root.get("failures"))
    # two that ran, one skipped, and the finding of a check that did not list itself as run
    assert int(suite.get("tests")) == 4 and int(suite.get("skipped")) == 1


def test_junit_escapes_markup_and_drops_control_characters(tmp_path):
    report = synthetic(tmp_path)
    bad = dataclasses.replace(report.findings[0], message='<b> & "x" \x1b[31mred\x00')
    text = junit.render(dataclasses.replace(report, findings=[bad]), root=tmp_path)
    root = assert_valid_junit(text)
    failure = root.find("testsuite/testcase/failure")
    assert failure.get("message") == '<b> & "x" [31mred'


# -- GitHub Actions -----------------------------------------------------------------------------


def test_github_escaping_follows_the_runner_rules():
    assert github.escape_data("100%\r\nnext") == "100%25%0D%0Anext"
    assert github.escape_property("a,b:c%\n") == "a%2Cb%3Ac%25%0A"
    line = github.command("error", {"file": "x,y.py", "line": 3, "title": "BS1 a:b"}, "m:1,2\n")
    assert line == "::error file=x%2Cy.py,line=3,title=BS1 a%3Ab::m:1,2%0A"


def test_github_commands_per_severity_with_file_line_and_title(tmp_path):
    out = github.render(synthetic(tmp_path), root=tmp_path).splitlines()
    column = ",col=7" if HAS_COLUMN else ""
    assert out[0].startswith(
        f"::error file=pkg/model%2Cv2.py,line=12{column},title=BS101 loss-at-init-not-chance::"
        "Loss 9.1 at init"
    )
    assert "%0A%0AFix: Zero the last layer.%0AThen rerun." in out[0]
    assert out[1].startswith("::warning title=BS105 dead-relu::90%25 of units dead")
    assert "(layer encoder.3)" in out[1]
    # outside the repository: no file property, GitHub could not place it
    assert out[2].startswith("::notice title=BS501 train-val-gap::Gap of 0.2")
    assert out[3] == "babysit: 1 error, 1 warning, 1 info"


def test_github_format_appends_a_step_summary_when_the_variable_is_set(audited, tmp_path):
    root, trace = audited
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    env = {"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_WORKSPACE": str(root)}
    result = runner.invoke(app, ["report", str(trace), "--format", "github"], env=env)
    assert result.exit_code == 0, result.output
    assert "::warning file=src/train.py,line=1,title=BS201 unnormalized-inputs::" in result.stdout
    text = summary.read_text()
    assert text.startswith("earlier step\n### babysit: ")
    assert "| ⚠️ | **BS201** `unnormalized-inputs` |" in text


def test_github_summary_escapes_table_cells_and_is_skipped_without_the_variable(tmp_path):
    report = synthetic(tmp_path)
    markdown = github.summary_markdown(report, root=tmp_path)
    row = next(line for line in markdown.splitlines() if "BS101" in line)
    assert "2.3 \\| 100% off" in row and "Zero the last layer.<br>Then rerun." in row
    assert "`pkg/model,v2.py:12`" in row
    assert github.write_step_summary(report, env={}, root=tmp_path) is None
    target = tmp_path / "s.md"
    assert github.write_step_summary(report, env={"GITHUB_STEP_SUMMARY": str(target)}) == target
    assert "BS105" in target.read_text()


def test_render_knows_the_ci_formats(checked):
    assert json.loads(render(checked, "sarif"))["version"] == "2.1.0"
    assert render(checked, "junit").startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert "::warning" in render(checked, "github")


def test_cli_writes_ci_formats_to_the_output_file(audited, tmp_path):
    _, trace = audited
    out = tmp_path / "report.xml"
    result = runner.invoke(app, ["report", str(trace), "-f", "junit", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert_valid_junit(out.read_text())
