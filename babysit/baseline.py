"""Baselines: accept today's findings once, and from then on report only new ones.

``--write-baseline FILE`` records every finding of a run with a fingerprint; ``--baseline FILE``
drops the findings whose fingerprint the file holds (as many times as it holds it) and counts
them as *baselined*. A fingerprint must survive a rerun, so it is built from what stays put:
the check id, the file (relative to the source root), the layer, and for static (``BS9xx``)
findings the line. It leaves out the message and the evidence, whose numbers change from run
to run, and the line of runtime findings, which moves whenever code above it is edited.
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
from babysit.reporters.locations import Where, source_root, where

if TYPE_CHECKING:
    from babysit.check import Finding
    from babysit.report import Report

BASELINE_SCHEMA = 1
STATIC_PREFIX = "BS9"

_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class Baseline:
    path: Path
    fingerprints: Counter[str]


def fingerprint(finding: Finding, place: Where) -> str:
    """A stable identity for ``finding`` at ``place`` (see the module docstring)."""
    line = place.line if finding.id.startswith(STATIC_PREFIX) else None
    key = "\x1f".join([finding.id, place.path or "", place.layer or "", str(line or "")])
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def message_template(message: str) -> str:
    """The message with its numbers blanked: the same problem measured again reads the same."""
    return _NUMBER.sub("#", message)


def write_baseline(report: Report, path: Path, *, root: Path | None = None) -> int:
    """Record every finding of ``report`` in ``path``; returns how many."""
    root = root or source_root()
    entries = []
    for finding in report.findings:
        place = where(finding, report, root)
        location = {
            k: v
            for k, v in (("file", place.path), ("layer", place.layer), ("line", place.line))
            if v is not None
        }
        entries.append(
            {
                "fingerprint": fingerprint(finding, place),
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
    if not isinstance(document, dict) or document.get("babysit_baseline") != BASELINE_SCHEMA:
        raise BabysitError(
            f"{path} is not a babysit baseline (schema {BASELINE_SCHEMA}); write one with "
            f"--write-baseline {path}"
        )
    findings = document.get("findings")
    if not isinstance(findings, list) or not all(_has_fingerprint(f) for f in findings):
        raise BabysitError(f"{path}: 'findings' must be a list of objects with a 'fingerprint'")
    return Baseline(path, Counter(f["fingerprint"] for f in findings))


def apply_baseline(report: Report, baseline: Baseline, *, root: Path | None = None) -> Report:
    """``report`` without the findings in ``baseline``; ``Report.baselined`` counts them."""
    root = root or source_root()
    budget = Counter(baseline.fingerprints)
    kept: list[Finding] = []
    for finding in report.findings:
        key = fingerprint(finding, where(finding, report, root))
        if budget[key] > 0:
            budget[key] -= 1
        else:
            kept.append(finding)
    return replace(report, findings=kept, baselined=len(report.findings) - len(kept))


def _has_fingerprint(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("fingerprint"), str)
