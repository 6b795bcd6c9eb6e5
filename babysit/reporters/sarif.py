"""SARIF 2.1.0 for GitHub code scanning (``github/codeql-action/upload-sarif``) and other viewers.

What code scanning needs, and what this writes:

* one run whose ``tool.driver`` lists a rule per check that ran or reported, with the short
  and full descriptions and the help (text and Markdown) taken from the check's documentation;
* per result: ``ruleId``/``ruleIndex``, a ``level``, ``message.text`` (code scanning shows
  its first sentence where space is short, so the problem comes first and the fix after it),
  and a location whose ``artifactLocation.uri`` is relative to the repository root with
  ``uriBaseId`` ``%SRCROOT%`` and whose ``region`` has at least ``startLine``. Runtime findings
  name the script line that called the loss or iterated the loader when they know it, the
  audited script's first line otherwise; a layer becomes a ``logicalLocation``;
* ``partialFingerprints``, so that the same finding in the next upload updates the same alert
  instead of opening a new one.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from babysit._version import __version__
from babysit.baseline import SourceLines, file_order, fingerprint, message_template
from babysit.check import Severity
from babysit.reporters.json import _finite
from babysit.reporters.locations import Where, source_root, where

if TYPE_CHECKING:
    from babysit.check import Check, Finding
    from babysit.report import Report

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://babysit.dev"
SRCROOT = "%SRCROOT%"
#: v2: static findings keyed by the flagged line's text (v1: its number), with ``:N`` counting
#: identical ones in file order, as CodeQL's ``primaryLocationLineHash`` does.
FINGERPRINT_KEY = "babysitFindingHash/v2"

LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}

#: The catalog's hundreds, as code scanning tags (ids are grouped by what they look at).
GROUPS = {
    "BS0": "internal",
    "BS1": "init-and-loss",
    "BS2": "data",
    "BS3": "normalization-and-architecture",
    "BS4": "optimization-and-gradients",
    "BS5": "generalization",
    "BS9": "static-lint",
}


def render(report: Report, *, root: Path | None = None, indent: int | None = 2) -> str:
    return json.dumps(to_sarif(report, root=root), indent=indent, allow_nan=False)


def to_sarif(report: Report, *, root: Path | None = None) -> dict[str, Any]:
    root = root or source_root()
    rules, index = _rules(report)
    places = [where(f, report, root) for f in report.findings]
    keys = _partial_fingerprints(report, places)
    results = [
        _result(f, place, key, index)
        for f, place, key in zip(report.findings, places, keys, strict=True)
    ]
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "babysit",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }
        },
        "invocations": [_invocation(report)],
        "originalUriBaseIds": {SRCROOT: {"uri": root.resolve().as_uri() + "/"}},
        "results": results,
        "columnKind": "unicodeCodePoints",
        "properties": {"target": report.target, "mode": report.trace.mode},
    }
    if report.baselined is not None:
        run["properties"]["baselined"] = report.baselined
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def _rules(report: Report) -> tuple[list[dict[str, Any]], dict[str, int]]:
    from babysit import registry

    by_name = {c.name: c for c in registry.all_checks()}
    by_id = {c.id: c for c in registry.all_checks()}
    wanted: dict[str, dict[str, Any]] = {}
    for name in report.checks_run:
        if name in by_name:
            wanted[by_name[name].id] = _rule(by_name[name])
    for finding in report.findings:
        if finding.id not in wanted:
            check = by_id.get(finding.id)
            wanted[finding.id] = _rule(check) if check else _unknown_rule(finding)
    rules = [wanted[key] for key in sorted(wanted)]
    return rules, {rule["id"]: i for i, rule in enumerate(rules)}


def _rule(check: type[Check]) -> dict[str, Any]:
    from babysit.registry import explain_markdown

    sections = check.doc_sections()
    full = sections.get("What it does") or check.summary
    return {
        "id": check.id,
        "name": check.name,
        "shortDescription": {"text": check.summary},
        "fullDescription": {"text": full},
        "help": {"text": check.doc() or check.summary, "markdown": explain_markdown(check)},
        "defaultConfiguration": {"level": LEVEL[check.severity]},
        "properties": {"tags": _tags(check.id)},
    }


def _unknown_rule(finding: Finding) -> dict[str, Any]:
    """A finding from a rule the registry does not know (a plugin): describe it by itself."""
    return {
        "id": finding.id,
        "name": finding.name,
        "shortDescription": {"text": finding.name.replace("-", " ")},
        "defaultConfiguration": {"level": LEVEL[finding.severity]},
        "properties": {"tags": _tags(finding.id)},
    }


def _tags(check_id: str) -> list[str]:
    group = GROUPS.get(check_id[:3])
    return ["babysit", "pytorch", "training", group] if group else ["babysit", "pytorch"]


def _result(finding: Finding, place: Where, key: str, index: dict[str, int]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.id,
        "ruleIndex": index[finding.id],
        "level": LEVEL[finding.severity],
        "message": {"text": f"{finding.message}\n\nFix: {finding.fix}"},
        "partialFingerprints": {FINGERPRINT_KEY: key},
        "properties": {"name": finding.name, "evidence": _finite(dict(finding.evidence))},
    }
    location = _location(place)
    if location:
        result["locations"] = [location]
    return result


def _location(place: Where) -> dict[str, Any] | None:
    location: dict[str, Any] = {}
    if place.path is not None:
        if place.relative:
            artifact = {"uri": quote(place.path), "uriBaseId": SRCROOT}
        else:  # outside the source root: only an absolute URI names it, without a base
            artifact = {"uri": Path(place.path).as_uri()}
        region: dict[str, Any] = {"startLine": place.line or 1}
        if place.line and place.column:
            region["startColumn"] = place.column
        location["physicalLocation"] = {"artifactLocation": artifact, "region": region}
    if place.layer:
        location["logicalLocations"] = [
            {
                "name": place.layer.rsplit(".", 1)[-1],
                "fullyQualifiedName": place.layer,
                "kind": "module",
            }
        ]
    return location or None


def _partial_fingerprint(finding: Finding, place: Where, line_text: str | None) -> str:
    """The baseline fingerprint (line text, not number: an edit above does not make an alert
    new) plus the message with its numbers blanked, so two different problems one check
    reports on the same layer stay two alerts."""
    key = fingerprint(finding, place, line_text) + "\x1f" + message_template(finding.message)
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _partial_fingerprints(report: Report, places: list[Where]) -> list[str]:
    """Each finding's partial fingerprint with ``:N``, its occurrence among identical ones in
    file order: two loops ending in the same flagged line stay two alerts."""
    lines = SourceLines(report)
    keys = [
        _partial_fingerprint(f, place, lines.line(f))
        for f, place in zip(report.findings, places, strict=True)
    ]
    order = sorted(range(len(keys)), key=lambda i: file_order(places[i]))
    seen: Counter[str] = Counter()
    numbered = list(keys)
    for i in order:
        seen[keys[i]] += 1
        numbered[i] = f"{keys[i]}:{seen[keys[i]]}"
    return numbered


def _invocation(report: Report) -> dict[str, Any]:
    invocation: dict[str, Any] = {"executionSuccessful": not report.trace.errors}
    notifications = [
        {
            "level": "error",
            "message": {"text": f"{error.get('probe', 'babysit')}: {error.get('error', '')}"},
        }
        for error in report.trace.errors
        if isinstance(error, dict)
    ]
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    return invocation
