"""The compact text report of ``babysit lint``: one line per finding, like ruff.

``path:line:col: BS903 [error] message`` (never wrapped: the text reporter prints lint
reports in soft-wrap mode) followed by an indented ``fix:`` line, sorted by file
and position, then a summary line, then the notes (files that could not be linted).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from rich.text import Text

from babysit.check import Finding, Severity

if TYPE_CHECKING:
    from babysit.report import Report

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "bold yellow", Severity.INFO: "bold cyan"}


def lint_renderables(report: Report) -> list[Any]:
    items: list[Any] = []
    for finding in sorted(report.findings, key=_position):
        line = Text()
        line.append(_where(finding), style="bold")
        line.append(": ")
        line.append(finding.id, style="bold")
        line.append(f" [{finding.severity.value}] ", style=_STYLE[finding.severity])
        line.append(finding.message)
        items.append(line)
        items.append(Text(f"  fix: {short_fix(finding.fix)}", style="dim"))
    items.append(summary_text(report))
    for note in report.trace.notes:
        items.append(Text(f"note: {note}", style="dim"))
    for error in report.trace.errors:
        items.append(
            Text(f"babysit internal error in {error['probe']}: {error['error']}", style="red")
        )
    return items


def summary_text(report: Report) -> Text:
    counts = report.summary
    files = report.trace.run.get("files", len(report.trace.sources))
    lines = report.trace.run.get("lines")
    scope = f"{files} file{'s' if files != 1 else ''}" + (f", {lines} lines" if lines else "")
    text = Text()
    if not report.findings:
        text.append("✓ no findings", style="bold green")
    else:
        order = (Severity.ERROR, Severity.WARNING, Severity.INFO)
        parts = [_count(counts[s.value], s) for s in order if counts[s.value]]
        text.append(f"Found {len(report.findings)}: " + ", ".join(parts), style="bold")
    text.append(f" in {scope} · {len(report.checks_run)} rules run", style="dim")
    return text


def _count(n: int, severity: Severity) -> str:
    if not n:
        return ""
    plural = "s" if n > 1 and severity is not Severity.INFO else ""
    return f"{n} {severity.value}{plural}"


def short_fix(fix: str) -> str:
    """The fix's first paragraph on one line (code blocks are for `--format json`/panels)."""
    first = re.split(r"\n\s*\n|```", fix.strip(), maxsplit=1)[0]
    return " ".join(first.split()).rstrip(":")


def _where(finding: Finding) -> str:
    location = finding.location
    if location is None or not location.file:
        return "babysit"
    return str(location).split(", ")[0]


def _position(finding: Finding) -> tuple:
    location = finding.location
    if location is None:
        return ("", 0, 0, finding.id)
    return (location.file or "", location.line or 0, location.column or 0, finding.id)
