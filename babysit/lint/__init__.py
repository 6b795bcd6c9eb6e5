"""Static rules (``BS9xx``, ``babysit lint``): training bugs visible in the script itself.

The engine reads ``trace.sources`` (``{"path", "text"}`` entries) so static rules are checks
like any other: pure functions of a Trace. :func:`lint_trace` builds that trace from paths;
``babysit audit`` adds the audited script to the same section.

Layers: :mod:`~babysit.lint.parse` (parsing, cached by path and text hash),
:mod:`~babysit.lint.imports` (import aliases), :mod:`~babysit.lint.scopes` (scopes and
reaching assignments), :mod:`~babysit.lint.analysis` (one cached :class:`Analysis` per file:
recognizers for optimizers, losses, models, activations, ``no_grad``),
:mod:`~babysit.lint.loops` (training/evaluation loops and mode switches),
:mod:`~babysit.lint.files` (file collection), :mod:`~babysit.lint.suppressions` (inline
``# babysit: ignore[...]``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from babysit.lint.analysis import Analysis, analyze
from babysit.lint.files import collect_files, read_sources
from babysit.lint.parse import ParseError
from babysit.lint.suppressions import without_suppressed
from babysit.trace import Trace

#: Id prefix of the static rules.
STATIC_PREFIX = "BS9"

__all__ = [
    "STATIC_PREFIX",
    "Analysis",
    "analyses",
    "analyze",
    "collect_files",
    "lint_selection",
    "lint_trace",
    "read_sources",
    "static_selection",
    "without_suppressed",
]


def lint_trace(paths: Sequence[str | Path], exclude: Iterable[str] = ()) -> Trace:
    """A ``mode="lint"`` Trace whose ``sources`` are the Python files under ``paths``; files
    that cannot be linted are listed in ``notes``. A missing path raises BabysitError."""
    files = collect_files(paths, exclude)
    collected = read_sources(files)
    target = " ".join(str(p) for p in paths)
    trace = Trace(mode="lint", target=target)
    trace.sources = collected.sources
    trace.notes.extend(collected.notes)
    trace.run["files"] = len(files)
    trace.run["lines"] = sum(s["text"].count("\n") + 1 for s in collected.sources)
    if not files:
        trace.notes.append("no Python files found")
    return trace


def static_selection(
    select: Iterable[str] | str | None = None, ignore: Iterable[str] | str | None = None
) -> list[str]:
    """The ids of the static rules chosen by ``select``/``ignore`` (plus ``BS000``, which
    reports a rule that crashed); BabysitError when no static rule is left."""
    from babysit import registry
    from babysit.errors import BabysitError

    chosen = [
        check.id
        for check in registry.select(select, ignore)
        if check.id.startswith(STATIC_PREFIX) or check.id == "BS000"
    ]
    if not any(i.startswith(STATIC_PREFIX) for i in chosen):
        raise BabysitError(
            "no static rule (BS9xx) is left after --select/--ignore; `babysit checks` lists them"
        )
    return chosen


def lint_selection(select: Iterable[str] | None) -> list[str] | None:
    """``select`` from a project's configuration as ``babysit lint`` applies it: unchanged when
    it chooses some static rule, ``None`` (every rule) when it only names runtime checks
    (``select = ["BS1", "BS2"]`` is about ``audit`` and ``check``)."""
    from babysit import registry

    if select is None:
        return None
    chosen = registry.select(list(select))
    return list(select) if any(c.id.startswith(STATIC_PREFIX) for c in chosen) else None


def analyses(trace: Trace) -> Iterator[Analysis]:
    """The analysis of every parseable source of ``trace`` (cached across rules)."""
    for source in trace.sources:
        path, text = source.get("path"), source.get("text")
        if not isinstance(path, str) or not isinstance(text, str):
            continue
        result = analyze(path, text)
        if not isinstance(result, ParseError):
            yield result
