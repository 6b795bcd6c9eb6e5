"""Clean training scripts in many styles (tests/lint_corpus/) and the bundled examples produce
no static finding at warning level or above."""

from __future__ import annotations

import pytest
from conftest import EXAMPLES, ROOT

from babysit.lint import lint_trace, static_selection
from babysit.report import judge

CORPUS = ROOT / "tests" / "lint_corpus"
SCRIPTS = sorted(CORPUS.glob("*.py"))


def test_the_corpus_is_large_enough():
    assert len(SCRIPTS) >= 15


@pytest.mark.parametrize("script", SCRIPTS + sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_clean_script_has_no_static_warning(script):
    trace = lint_trace([script])
    assert trace.sources, trace.notes  # it was read and parsed
    report = judge(trace, select=static_selection())
    assert not trace.errors, trace.errors
    loud = [f"{f.location} {f.id} {f.message}" for f in report.findings if f.severity.rank >= 1]
    assert loud == []
