"""Baselines: accept today's findings once, and from then on report only new ones.

``--write-baseline FILE`` records every finding of a run with a fingerprint; ``--baseline FILE``
drops the findings whose fingerprint the file holds (as many times as it holds it) and counts
them as *baselined*. A fingerprint must survive a rerun, so it is built from what stays put:
the check id, the file (relative to the source root), the layer, and for static (``BS9xx``)
findings the text of the flagged line (whitespace-normalized). It leaves out the message and
the evidence, whose numbers change from run to run, and every line *number*, which moves
whenever code above is edited. Two identical flagged lines in one file share a fingerprint;
the file holds it twice, and each entry accepts one finding.

Schema 1 files (babysit 0.1 before line texts) keyed static findings by line number; they
still load and match that way, and ``--write-baseline`` rewrites them as schema 2.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from babysit._version import __version__
from babysit.errors import BabysitError
from babysit.lint.parse import source_lines
from babysit.reporters.locations import Where, source_root, where

if TYPE_CHECKING:
    from babysit.check import Finding
    from babysit.report import Report

BASELINE_SCHEMA = 2
#: Schemas ``load_baseline`` reads: 1 keyed static findings by line number.
READABLE_SCHEMAS = (1, 2)
STATIC_PREFIX = "BS9"

_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Baseline:
    path: Path
    fingerprints: Counter[str]
    schema: int = BASELINE_SCHEMA


def fingerprint(finding: Finding, place: Where, line_text: str | None = None) -> str:
    """A stable identity for ``finding`` at ``place`` (see the module docstring).

    ``line_text`` is the source line a static finding points at; without it (the file cannot
    be read, or a schema-1 baseline is matched) the line number stands in for it."""
    anchor = ""
    if finding.id.startswith(STATIC_PREFIX):
        if line_text is not None:
            anchor = "text:" + _SPACE.sub(" ", line_text).strip()
        else:
            anchor = str(place.line or "")
    key = "\x1f".join([finding.id, place.path or "", place.layer or "", anchor])
    return hashlib.sha256(key.encode()).hexdigest()[:24]


class SourceLines:
    """The text of the lines static findings point at: from the report's recorded sources
    (what was linted), else from the file on disk; None when neither has it."""

    def __init__(self, report: Report) -> None:
        self._texts: dict[str, list[str] | None] = {}
        for source in report.trace.sources:
            path, text = source.get("path"), source.get("text")
            if isinstance(path, str) and isinstance(text, str):
                self._texts[path] = source_lines(text)  # the last text wins, as for suppressions

    def line(self, finding: Finding) -> str | None:
        location = finding.location
        if not finding.id.startswith(STATIC_PREFIX) or location is None:
            return None
        if not location.file or not location.line:
            return None
        lines = self._texts.get(location.file, ...)
        if lines is ...:
            try:
                lines = source_lines(Path(location.file).read_text(encoding="utf-8-sig"))
            except (OSError, UnicodeDecodeError, ValueError):
                lines = None
            self._texts[location.file] = lines
        if lines is None or not 0 < location.line <= len(lines):
            return None
        return lines[location.line - 1]


def fingerprints_of(report: Report, root: Path) -> list[tuple[Finding, Where, str]]:
    """Each finding of ``report`` with its place and its (current schema) fingerprint."""
    lines = SourceLines(report)
    placed = []
    for finding in report.findings:
        place = where(finding, report, root)
        placed.append((finding, place, fingerprint(finding, place, lines.line(finding))))
    return placed


def message_template(message: str) -> str:
    """The message with its numbers blanked: the same problem measured again reads the same."""
    return _NUMBER.sub("#", message)


def write_baseline(report: Report, path: Path, *, root: Path | None = None) -> int:
    """Record every finding of ``report`` in ``path``; returns how many."""
    root = root or source_root()
    entries = []
    for finding, place, key in fingerprints_of(report, root):
        location = {
            k: v
            for k, v in (("file", place.path), ("layer", place.layer), ("line", place.line))
            if v is not None
        }
        entries.append(
            {
                "fingerprint": key,
                "id": finding.id,
                "name": finding.name,
                "severity": finding.severity.value,
                "location": location,
                "message": finding.message,  # for the reader of the file; not matched on
            }
        )
    document = {
        "babysit_baseline": BASELINE_SCHEMA,
        "babysit_version": __version__,
        "target": report.target,
        "findings": entries,
    }
    try:
        path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise BabysitError(f"cannot write the baseline to {path}: {exc}") from exc
    return len(entries)


def load_baseline(path: Path) -> Baseline:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BabysitError(
            f"no such baseline file: {path} (create it with --write-baseline {path})"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BabysitError(f"{path} is not a babysit baseline: {exc}") from exc
    schema = document.get("babysit_baseline") if isinstance(document, dict) else None
    if schema not in READABLE_SCHEMAS:
        raise BabysitError(
            f"{path} is not a babysit baseline (schema {BASELINE_SCHEMA}); write one with "
            f"--write-baseline {path}"
        )
    findings = document.get("findings")
    if not isinstance(findings, list) or not all(_has_fingerprint(f) for f in findings):
        raise BabysitError(f"{path}: 'findings' must be a list of objects with a 'fingerprint'")
    return Baseline(path, Counter(f["fingerprint"] for f in findings), schema)


def apply_baseline(report: Report, baseline: Baseline, *, root: Path | None = None) -> Report:
    """``report`` without the findings in ``baseline``; ``Report.baselined`` counts them."""
    root = root or source_root()
    budget = Counter(baseline.fingerprints)
    placed = fingerprints_of(report, root)
    accepted: set[int] = set()
    # identical lines share a fingerprint: the baseline accepts the first ones in the file
    # (usually the old ones; a copy pasted above the original takes its place)
    for i in sorted(range(len(placed)), key=lambda i: file_order(placed[i][1])):
        finding, place, key = placed[i]
        if baseline.schema == 1:
            key = fingerprint(finding, place)  # static findings keyed by line number
        if budget[key] > 0:
            budget[key] -= 1
            accepted.add(i)
    kept = [placed[i][0] for i in range(len(placed)) if i not in accepted]
    return replace(report, findings=kept, baselined=len(accepted))


def file_order(place: Where) -> tuple[str, int]:
    """Sort key: by file, then line as a number (``iter_sorted`` orders findings otherwise)."""
    return place.path or "", place.line or 0


def _has_fingerprint(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("fingerprint"), str)
