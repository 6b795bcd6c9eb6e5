"""Exceptions babysit raises at its users."""

from __future__ import annotations


class BabysitError(Exception):
    """Bad input or configuration: the message says what to do instead (CLI exit code 2)."""


class FindingsError(AssertionError):
    """Raised by :meth:`Report.raise_for_findings`; an AssertionError so test runners show it
    as a failed assertion with the report as its message."""

    def __init__(self, message: str, findings: list) -> None:
        super().__init__(message)
        self.findings = findings
