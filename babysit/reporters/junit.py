"""JUnit XML for CI test-report views (GitLab, Jenkins, Azure, test-reporter actions).

Each check is a test case (``classname="babysit.<mode>"``,
``name="BS101 loss-at-init-not-chance"``): it fails when it reported something at or above
``fail_on``, is skipped when it could not run (with the reason), and passes otherwise;
findings below ``fail_on`` go to its ``<system-out>``. The counts are those of test cases,
as JUnit readers expect.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from babysit._version import __version__
from babysit.reporters.locations import source_root, where

if TYPE_CHECKING:
    from babysit.check import Finding
    from babysit.report import Report

# XML 1.0 cannot carry most control characters, not even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def render(report: Report, *, fail_on: str = "error", root: Path | None = None) -> str:
    root = root or source_root()
    failing = {id(f) for f in report.failing(fail_on)}
    cases = _cases(report)
    suite = ET.Element("testsuite", name="babysit")
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("babysit_version", __version__),
        ("target", report.target),
        ("mode", report.trace.mode),
        ("fail_on", str(fail_on)),
    ):
        ET.SubElement(properties, "property", name=name, value=_text(value))
    if report.baselined is not None:
        ET.SubElement(properties, "property", name="baselined", value=str(report.baselined))

    counts = {"tests": 0, "failures": 0, "skipped": 0}
    for label, findings, skip_reason in cases:
        case = ET.SubElement(
            suite, "testcase", classname=f"babysit.{report.trace.mode}", name=label
        )
        counts["tests"] += 1
        if skip_reason is not None:
            ET.SubElement(case, "skipped", message=_text(skip_reason))
            counts["skipped"] += 1
            continue
        failed = [f for f in findings if id(f) in failing]
        passed = [f for f in findings if id(f) not in failing]
        if failed:
            counts["failures"] += 1
            worst = max(f.severity for f in failed)
            message = failed[0].message if len(failed) == 1 else f"{len(failed)} findings"
            failure = ET.SubElement(case, "failure", message=_text(message), type=worst.value)
            failure.text = _text(_describe(failed, report, root))
        if passed:
            ET.SubElement(case, "system-out").text = _text(_describe(passed, report, root))

    for key, value in counts.items():
        suite.set(key, str(value))
    suite.set("errors", "0")
    suites = ET.Element("testsuites", name="babysit", errors="0")
    suites.set("tests", str(counts["tests"]))
    suites.set("failures", str(counts["failures"]))
    suites.append(suite)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


def _cases(report: Report) -> list[tuple[str, list[Finding], str | None]]:
    """(test name, findings, skip reason) per check that ran, was skipped or reported."""
    from babysit import registry

    known = {c.name: c for c in registry.all_checks()}
    by_name: dict[str, list[Finding]] = {}
    ids: dict[str, str] = {}
    for finding in report.findings:
        by_name.setdefault(finding.name, []).append(finding)
        ids[finding.name] = finding.id
    names = [*report.checks_run, *report.skipped, *by_name]
    for name in names:
        if name in known:
            ids.setdefault(name, known[name].id)
    ordered = sorted(dict.fromkeys(names), key=lambda n: (ids.get(n, "BS~"), n))
    return [
        (f"{ids.get(name, '?')} {name}", by_name.get(name, []), report.skipped.get(name))
        for name in ordered
    ]


def _describe(findings: Sequence[Finding], report: Report, root: Path) -> str:
    blocks = []
    for finding in findings:
        place = where(finding, report, root)
        lines = [f"{finding.severity.value} {finding.id} {finding.name}: {finding.message}"]
        at = []
        if place.path and not place.fallback:
            at.append(f"{place.path}:{place.line}" if place.line else place.path)
        if place.layer:
            at.append(f"layer {place.layer}")
        if at:
            lines.append("at " + ", ".join(at))
        for key, value in finding.evidence.items():
            lines.append(f"{key}: {value}")
        lines.append("fix: " + finding.fix)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _text(value: object) -> str:
    return _NOT_XML.sub("", str(value))
