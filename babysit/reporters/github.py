"""GitHub Actions: workflow commands that annotate the diff, and a Markdown job summary.

``render`` prints one ``::error`` / ``::warning`` / ``::notice`` command per finding (the
runner turns them into annotations on the file and line), escaped as the runner expects:
``%``, CR and LF in every part, and also ``:`` and ``,`` in the properties. ``summary_markdown``
is the table of findings and fixes that ``write_step_summary`` appends to the file named by
``$GITHUB_STEP_SUMMARY``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from babysit.check import Severity
from babysit.reporters.locations import source_root, where

if TYPE_CHECKING:
    from babysit.report import Report

COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}
ICON = {Severity.ERROR: "❌", Severity.WARNING: "⚠️", Severity.INFO: "ℹ️"}


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, properties: Mapping[str, object], message: str) -> str:
    props = ",".join(
        f"{key}={escape_property(str(value))}"
        for key, value in properties.items()
        if value is not None
    )
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def render(report: Report, *, root: Path | None = None) -> str:
    root = root or source_root()
    lines = []
    for finding in report.findings:
        place = where(finding, report, root)
        properties: dict[str, object] = {}
        if place.relative:  # an annotation can only point into the checked-out repository
            properties["file"] = place.path
            properties["line"] = place.line or 1
            if place.line and place.column:
                properties["col"] = place.column
        properties["title"] = f"{finding.id} {finding.name}"
        message = finding.message
        if place.layer:
            message += f" (layer {place.layer})"
        text = f"{message}\n\nFix: {finding.fix}"
        lines.append(command(COMMAND[finding.severity], properties, text))
    lines.append(_summary_line(report))
    return "\n".join(lines) + "\n"


def summary_markdown(report: Report, *, root: Path | None = None) -> str:
    root = root or source_root()
    header = f"### babysit: {_cell(report.target) or report.trace.mode}\n\n" + _counts(report)
    if report.baselined:
        header += f" ({report.baselined} more accepted by the baseline)"
    if not report.findings:
        return header + ". Nothing to fix.\n"
    rows = [
        "| | check | where | problem | fix |",
        "|---|---|---|---|---|",
    ]
    for finding in report.findings:
        place = where(finding, report, root)
        at = []
        if place.path and not place.fallback:
            at.append(f"`{place.path}:{place.line}`" if place.line else f"`{place.path}`")
        if place.layer:
            at.append(f"layer `{place.layer}`")
        rows.append(
            f"| {ICON[finding.severity]} | **{finding.id}** `{finding.name}` | "
            f"{_cell(', '.join(at))} | {_cell(finding.message)} | {_cell(finding.fix)} |"
        )
    return header + "\n\n" + "\n".join(rows) + "\n"


def write_step_summary(
    report: Report, *, env: Mapping[str, str] | None = None, root: Path | None = None
) -> Path | None:
    """Append the summary to ``$GITHUB_STEP_SUMMARY``; returns the file, or None when unset."""
    target = (os.environ if env is None else env).get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as stream:
        stream.write(summary_markdown(report, root=root) + "\n")
    return path


def _counts(report: Report) -> str:
    counts = report.summary
    return ", ".join(f"{counts[s.value]} {s.value}" for s in reversed(list(Severity)))


def _summary_line(report: Report) -> str:
    text = _counts(report)
    if report.baselined:
        text += f"; {report.baselined} baselined"
    return f"babysit: {text}"


def _cell(text: str) -> str:
    """Markdown table cells hold one line and no bare pipes."""
    return text.replace("|", "\\|").replace("\r", "").replace("\n", "<br>")
