"""Which files ``babysit lint PATH...`` reads, and reading them into ``trace.sources``.

Directories are walked recursively for ``*.py`` files, skipping virtual environments, VCS and
build directories, caches and ``node_modules``, and anything matching an ``--exclude`` glob.
A file named explicitly is always read. A file that cannot be used (not UTF-8, larger than
:data:`MAX_BYTES`, a syntax error) becomes a note, never an abort.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babysit.errors import BabysitError
from babysit.lint.analysis import analyze
from babysit.lint.parse import ParseError

#: Larger files are generated code or data, not training scripts.
MAX_BYTES = 5 * 1024 * 1024
#: A tree with more files than this is probably not what the user meant; the rest are noted.
MAX_FILES = 50_000

SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        ".env",
        "env",
        ".tox",
        ".nox",
        ".eggs",
        "build",
        "dist",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "site-packages",
        ".ipynb_checkpoints",
    }
)


@dataclass
class Collected:
    sources: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def collect_files(paths: Sequence[str | Path], exclude: Iterable[str] = ()) -> list[str]:
    """The Python files under ``paths``, in a stable order, as paths relative to the way they
    were given (``src/train.py``). A missing path is a :class:`BabysitError`."""
    patterns = [p for p in exclude if p]
    found: list[str] = []
    seen: set[str] = set()
    for given in paths:
        root = str(given)
        if not os.path.exists(root):
            raise BabysitError(f"no such file or directory: {root}")
        candidates = [root] if os.path.isfile(root) else _walk(root, patterns)
        for path in candidates:
            key = os.path.normcase(os.path.abspath(path))
            if key not in seen and not (path != root and _excluded(path, patterns)):
                seen.add(key)
                found.append(path)
    return found


def _walk(root: str, patterns: list[str]) -> list[str]:
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(
            d
            for d in subdirs
            if d not in SKIP_DIRS
            and not d.endswith(".egg-info")
            and not _excluded(os.path.join(directory, d), patterns)
        )
        found.extend(os.path.join(directory, f) for f in sorted(files) if f.endswith(".py"))
    return found


def _excluded(path: str, patterns: list[str]) -> bool:
    normalized = path.replace(os.sep, "/")
    if normalized.startswith("./"):
        normalized = normalized[2:]
    name = os.path.basename(normalized)
    return any(
        fnmatch.fnmatch(normalized, p)
        or fnmatch.fnmatch(name, p)
        or fnmatch.fnmatch(normalized, f"*/{p}")
        for p in patterns
    )


def read_sources(paths: Sequence[str]) -> Collected:
    """Read ``paths`` into ``{"path", "text"}`` entries; what cannot be read or parsed becomes
    a note (``path: why``)."""
    result = Collected()
    if len(paths) > MAX_FILES:
        result.notes.append(
            f"{len(paths)} files found; only the first {MAX_FILES} were linted "
            "(narrow the paths or use --exclude)"
        )
        paths = paths[:MAX_FILES]
    for path in paths:
        display = path[2:] if path.startswith("./") else path
        problem = None
        try:
            status = os.stat(path)
            size = status.st_size
            if not stat.S_ISREG(status.st_mode):  # a FIFO or a device would block the read
                problem = "skipped: not a regular file"
            elif size > MAX_BYTES:
                problem = (
                    f"skipped: {size / 1e6:.1f} MB is larger than the {MAX_BYTES // 2**20} MB limit"
                )
            else:
                with open(path, "rb") as handle:
                    data = handle.read()
                text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            problem = (
                f"skipped: not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r})"
            )
        except OSError as exc:
            problem = f"skipped: cannot read it ({exc.strerror or exc})"
        if problem is None:
            analysis = analyze(display, text)  # built once here, reused (cached) by every rule
            if isinstance(analysis, ParseError):
                problem = f"not linted: {analysis}"
        if problem is not None:
            result.notes.append(f"{display}: {problem}")
        else:
            result.sources.append({"path": display, "text": text})
    return result
