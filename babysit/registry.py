"""The catalog: discovers every check in ``babysit.checks`` and selects among them.

Selectors (for ``select``/``ignore``, the CLI and configuration) may be a check id
(``BS101``), an id prefix (``BS1``), a name (``loss-at-init-not-chance``) or ``ALL``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from functools import cache

from babysit.check import Check
from babysit.errors import BabysitError


@cache
def all_checks() -> tuple[type[Check], ...]:
    import babysit.checks as package

    found: list[type[Check]] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Check)
                and value is not Check
                and value.__module__ == module.__name__
            ):
                found.append(value)
    ids = [c.id for c in found]
    names = [c.name for c in found]
    for label, values in (("id", ids), ("name", names)):
        duplicates = {v for v in values if values.count(v) > 1}
        if duplicates:
            raise RuntimeError(f"duplicate check {label}s in the catalog: {sorted(duplicates)}")
    return tuple(sorted(found, key=lambda c: c.id))


def get(selector: str) -> type[Check]:
    """One check by id or name (case-insensitive for ids)."""
    key = selector.strip()
    for check in all_checks():
        if key.upper() == check.id or key.lower() == check.name:
            return check
    known = ", ".join(f"{c.id} ({c.name})" for c in all_checks())
    raise BabysitError(f"no check called {selector!r}; known checks: {known}")


def _matches(check: type[Check], selector: str) -> bool:
    key = selector.strip()
    if key.upper() == "ALL":
        return True
    return check.id.startswith(key.upper()) or check.name == key.lower()


def select(
    select: Iterable[str] | str | None = None, ignore: Iterable[str] | str | None = None
) -> list[type[Check]]:
    """The checks chosen by ``select`` (default: all) minus those matched by ``ignore``."""
    chosen_selectors = as_selectors(select) or ["ALL"]
    ignored_selectors = as_selectors(ignore)
    for selector in (*chosen_selectors, *ignored_selectors):
        if not any(_matches(c, selector) for c in all_checks()):
            known = ", ".join(f"{c.id} ({c.name})" for c in all_checks())
            raise BabysitError(
                f"selector {selector!r} matches no check; use an id, an id prefix such as "
                f"'BS1', a name, or ALL. Known checks: {known}"
            )
    return [
        c
        for c in all_checks()
        if any(_matches(c, s) for s in chosen_selectors)
        and not any(_matches(c, s) for s in ignored_selectors)
    ]


def as_selectors(value: Iterable[str] | str | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part for part in value.replace(",", " ").split() if part]
    if not isinstance(value, Iterable) or not all(isinstance(v, str) for v in value):
        raise BabysitError(
            f"check selectors must be strings such as 'BS101', 'BS1' or "
            f"'loss-at-init-not-chance' (or a list of them), got {value!r}"
        )
    return list(value)


def catalog_markdown() -> str:
    """The README's catalog table, generated from the registry (a test keeps them in sync)."""
    lines = [
        "| id | name | default severity | what it finds |",
        "|----|------|------------------|---------------|",
    ]
    for check in all_checks():
        lines.append(f"| {check.id} | `{check.name}` | {check.severity.value} | {check.summary} |")
    return "\n".join(lines)


def explain_markdown(check: type[Check]) -> str:
    """The check's documentation as Markdown: summary line, then the ``##`` sections."""
    doc = check.doc()
    thresholds = ", ".join(f"`{k}` = {v}" for k, v in check.thresholds.items()) or "none"
    return f"{doc}\n\nDefault thresholds: {thresholds}."
