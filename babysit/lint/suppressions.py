"""Inline suppressions: ``# babysit: ignore``, ``# babysit: ignore[BS903]``,
``# babysit: ignore[missing-zero-grad, BS901]`` on the line a finding points at."""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterable, Mapping
from functools import lru_cache

from babysit.check import Finding

_DIRECTIVE = re.compile(r"#\s*babysit\s*:\s*ignore\b(?:\s*\[([^\]]*)\])?", re.I)
#: ``None`` in a line's entry means "every rule".
Directives = dict[int, frozenset[str] | None]


@lru_cache(maxsize=1024)
def directives(text: str) -> Directives:
    """Line -> the rule ids/names ignored on it, from the file's comments (tokenized, so a
    ``# babysit: ignore`` inside a string does not count)."""
    if "babysit" not in text:
        return {}
    found: Directives = {}
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return {}
    for token in tokens:
        if token.type != tokenize.COMMENT:
            continue
        match = _DIRECTIVE.search(token.string)
        if not match:
            continue
        line = token.start[0]
        if match.group(1) is None:
            found[line] = None
        elif found.get(line, frozenset()) is not None:
            names = {part.strip().lower() for part in match.group(1).split(",") if part.strip()}
            found[line] = frozenset(names) | (found.get(line) or frozenset())
    return found


def is_suppressed(finding: Finding, sources: Mapping[str, str]) -> bool:
    """True when the line ``finding`` points at in one of ``sources`` (path -> text) carries a
    directive naming the finding's id or name (or no rule at all)."""
    location = finding.location
    if location is None or not location.file or not location.line:
        return False
    text = sources.get(location.file)
    if text is None:
        return False
    table = directives(text)
    if location.line not in table:
        return False
    names = table[location.line]
    return names is None or finding.id.lower() in names or finding.name in names


def without_suppressed(findings: Iterable[Finding], sources: Iterable[Mapping]) -> list[Finding]:
    """``findings`` minus those suppressed inline in ``sources`` (``trace.sources`` entries)."""
    texts = {s["path"]: s["text"] for s in sources if "path" in s and "text" in s}
    findings = list(findings)
    if not texts:
        return findings
    return [f for f in findings if not is_suppressed(f, texts)]
