"""The machine-readable report (schema 1). See README, "JSON report".

Stable keys: ``schema``, ``babysit_version``, ``target``, ``findings`` (each with ``id``,
``name``, ``severity``, ``message``, ``fix``, ``evidence``, ``location``) and ``summary``.
``checks``, ``run`` and ``notes`` are informative additions.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from babysit.report import Report


def render(report: Report, *, indent: int | None = 2) -> str:
    return json.dumps(_finite(report.to_dict()), indent=indent, allow_nan=False)


def _finite(value):
    """JSON has no NaN or Infinity: non-finite numbers become strings ("nan", "inf")."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    return value
