from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.trace import Trace


class InternalError(Check):
    """A part of babysit failed; training went on, but some statistics are missing.

    ## What it does
    Reports every exception raised inside one of babysit's own probes or checks. A probe that
    fails is switched off for the rest of the run (the smdebug rule: an error inside the tool
    disables the tool, never the user's training), so the checks that need its numbers may
    have less to go on.

    ## Why is this bad?
    It is not a bug in your model. It is a bug in babysit, and a report with a silent gap
    would look cleaner than it is.

    ## Example
    A custom layer returns an object babysit does not know how to summarize, and the
    activation probe raises; the report shows `internal-error` with the traceback.

    ## Fix
    Please report it with the evidence (probe, error, traceback). Meanwhile
    `ignore=["activation-variance-unstable"]` (or the check that depends on the failing
    probe) keeps the rest of the report useful. The CLI exits with code 3 when this fires.

    ## Thresholds
    None: any internal error is reported.

    ## References
    smdebug's rule of isolation: a failing hook disables itself and training continues.
    """

    id = "BS000"
    name = "internal-error"
    severity = Severity.WARNING
    summary = "babysit itself failed somewhere; the report may be incomplete"

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        for error in trace.errors:
            yield self.finding(
                f"babysit's {error['probe']} probe failed and was switched off at step "
                f"{error.get('step', '?')}: {error['error']}",
                "This is a bug in babysit, not in your training. Please report it with the "
                "traceback below; your training was not affected.",
                evidence={k: v for k, v in error.items() if k in ("probe", "error", "traceback")},
            )
