"""Output formats. Each reporter turns a Report into text for one audience."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from babysit.report import Report

FORMATS = ("text", "json", "html", "sarif", "junit", "github")


def render(report: Report, fmt: str, *, fail_on: str = "error", root: Path | None = None) -> str:
    """``report`` as ``fmt``. ``fail_on`` decides which findings JUnit counts as failures;
    ``root`` is the folder CI formats make paths relative to (default: the git work tree,
    or ``$GITHUB_WORKSPACE``)."""
    if fmt == "sarif":
        from babysit.reporters.sarif import render as render_sarif

        return render_sarif(report, root=root) + "\n"
    if fmt == "junit":
        from babysit.reporters.junit import render as render_junit

        return render_junit(report, fail_on=fail_on, root=root)
    if fmt == "github":
        from babysit.reporters.github import render as render_github

        return render_github(report, root=root)
    if fmt == "json":
        from babysit.reporters.json import render as render_json

        return render_json(report) + "\n"
    if fmt == "text":
        from babysit.reporters.text import render as render_text

        return render_text(report)
    if fmt == "html":
        from babysit.reporters.html import render as render_html

        return render_html(report)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
