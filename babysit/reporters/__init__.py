"""Output formats. Each reporter turns a Report into text for one audience."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from babysit.report import Report

FORMATS = ("text", "json")


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        from babysit.reporters.json import render as render_json

        return render_json(report) + "\n"
    if fmt == "text":
        from babysit.reporters.text import render as render_text

        return render_text(report)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
