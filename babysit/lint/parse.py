"""Parsing, cached by (path, hash of the text).

Every static rule walks the same files, and ``babysit report trace.json`` judges the same
sources again: parsing (and the analysis built on it, see :mod:`babysit.lint.analysis`) happens
once per distinct text.
"""

from __future__ import annotations

import ast
import contextlib
import gc
import hashlib
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

#: Cached entries (one per distinct file text), the oldest evicted first. More than
#: the chunk of files ``report.judge`` hands the static rules at a time, so each file of a
#: chunk is parsed once; small enough that a tree of thousands of files does not keep every
#: syntax tree alive (about 1 MB each for a 1,000-line file, with its analysis).
CACHE_SIZE = 256


@dataclass(frozen=True)
class ParseError:
    """Why a source could not be parsed, with the 1-based position when Python gives one."""

    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else ""
        if self.line and self.column:
            where += f", column {self.column}"
        return f"{self.message} ({where})" if where else self.message


def text_key(path: str, text: str) -> tuple[str, str]:
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    return path, digest


_TREES: dict[tuple[str, str], ast.Module | ParseError] = {}
_NEWLINE = re.compile(r"\r\n|\r|\n")


def source_lines(text: str) -> list[str]:
    """``text`` split into lines as Python numbers them: at ``\\n``, ``\\r\\n`` and ``\\r``
    only. ``str.splitlines`` also splits at form feeds (PEP 8 allows them between sections)
    and other separators, which would shift every later line number by one."""
    return _NEWLINE.split(text)


def remember(cache: dict, key: object, value: object) -> None:
    """Insert into a bounded cache, evicting the oldest entry when full (first in, first out:
    the files of the chunk being judged are the newest, so they are never evicted mid-chunk)."""
    if len(cache) >= CACHE_SIZE:
        del cache[next(iter(cache))]
    cache[key] = value


def parse(path: str, text: str) -> ast.Module | ParseError:
    """The module's AST, or a :class:`ParseError` (never raises for bad source text)."""
    key = text_key(path, text)
    hit = _TREES.get(key)
    if hit is None:
        hit = _parse_uncached(path, text)
        remember(_TREES, key, hit)
    return hit


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while building a tree: the collector would rescan the
    growing heap of new nodes again and again (about 40% of the time on a 3 MB file). Memory
    is still freed by reference counting; cycles wait until the collector resumes."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse_uncached(path: str, text: str) -> ast.Module | ParseError:
    try:
        with warnings.catch_warnings(), gc_paused():
            # invalid escape sequences and the like: not ours to report, and not on stderr
            warnings.simplefilter("ignore")
            return ast.parse(text, filename=path)
    except SyntaxError as exc:
        return ParseError(f"syntax error: {exc.msg}", exc.lineno, exc.offset)
    except (ValueError, RecursionError, MemoryError) as exc:
        # ValueError: NUL bytes; RecursionError/MemoryError: absurdly nested expressions
        return ParseError(f"cannot parse: {type(exc).__name__}: {exc}")
