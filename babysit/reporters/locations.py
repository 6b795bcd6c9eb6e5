"""Where a finding points, as CI tools and baselines need it: a path relative to the source root.

Code scanning, workflow annotations and baselines all compare paths across machines, so an
absolute path (``/home/me/proj/train.py`` here, ``/home/runner/work/proj/proj/train.py`` in CI)
must become the same relative path (``train.py``) everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from babysit.check import Finding
    from babysit.report import Report


@dataclass(frozen=True)
class Where:
    """A finding's place: ``path`` is POSIX and relative to the root when the file is inside it."""

    path: str | None
    line: int | None = None
    column: int | None = None
    layer: str | None = None
    #: The finding named no file of its own and points at the audited script instead.
    fallback: bool = False

    @property
    def relative(self) -> bool:
        return self.path is not None and not Path(self.path).is_absolute()


def source_root(start: Path | None = None) -> Path:
    """The folder paths are made relative to.

    ``$GITHUB_WORKSPACE`` when set (the checkout GitHub resolves annotation and SARIF paths
    against), else the git work tree around ``start`` (default: the working directory), else
    ``start`` itself.
    """
    workspace = os.environ.get("GITHUB_WORKSPACE")
    if workspace:
        return Path(workspace).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return here


def relative_path(path: str | Path, root: Path) -> str:
    """``path`` relative to ``root`` in POSIX form, or absolute when it lies outside ``root``."""
    resolved = Path(path).expanduser().resolve()
    try:
        return resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def default_file(report: Report) -> str | None:
    """The file a finding without a file of its own belongs to: the audited script."""
    trace = report.trace
    target = trace.target or ""
    if trace.mode == "audit" and target:
        return target
    source = trace.run.get("source") if isinstance(trace.run, dict) else None
    if isinstance(source, str) and source:
        return source
    if target.endswith(".py") and Path(target).is_file():
        return target
    return None


def where(finding: Finding, report: Report, root: Path) -> Where:
    location = finding.location
    layer = location.layer if location else None
    file = location.file if location else None
    if file:
        column = getattr(location, "column", None)  # set by static (lint) findings
        return Where(relative_path(file, root), location.line, column, layer)
    fallback = default_file(report)
    if fallback is None:
        return Where(None, layer=layer)
    return Where(relative_path(fallback, root), layer=layer, fallback=True)
