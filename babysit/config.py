"""``[tool.babysit]`` in ``pyproject.toml``: project defaults for every babysit command.

The nearest ``pyproject.toml`` that *has* a ``[tool.babysit]`` table wins, searching from the
audited script's folder (or the working directory) upwards; a ``pyproject.toml`` without the
table is passed over. Command-line flags override the file, which overrides the built-in
defaults; ``--ignore`` adds to the file's ``ignore`` (ignoring is additive, as in ruff).

    [tool.babysit]
    select = ["BS1", "BS2"]
    ignore = ["BS105:encoder", "dead-relu"]
    fail-on = "warning"
    max-steps = 100

    [tool.babysit.thresholds.BS101]      # or [tool.babysit.thresholds.loss-at-init-not-chance]
    rel_tol = 0.5
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any

from babysit.errors import BabysitError

FAIL_ON = ("error", "warning", "info", "never")
FORMATS = ("text", "json", "sarif", "junit", "github")


@dataclass(frozen=True)
class Config:
    """Resolved settings: the file's values over the defaults. ``path`` is None without a file."""

    path: Path | None = None
    select: tuple[str, ...] | None = None  # None: every check
    ignore: tuple[str, ...] = ()
    fail_on: str = "error"
    max_steps: int = 200
    max_time: float = 0.0
    max_epochs: int = 0
    sample_every: int = 10
    overhead_budget: float = 0.03
    preflight_budget: float = 30.0
    format: str = "text"
    exclude: tuple[str, ...] = ()
    thresholds: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def merge(self, **given: Any) -> Config:
        """The settings with the command line's values on top; ``None`` means "not given".

        ``select`` replaces the file's; ``ignore`` and ``exclude`` extend it.
        """
        unknown = set(given) - {f.name for f in fields(self)} - {"path"}
        if unknown:
            raise TypeError(f"unknown settings {sorted(unknown)}")
        changes: dict[str, Any] = {}
        for name, value in given.items():
            if value is None:
                continue
            if isinstance(value, Enum):
                value = value.value  # a CLI choice
            if name in ("ignore", "exclude"):
                changes[name] = (*getattr(self, name), *value)
            elif name == "select":
                changes[name] = tuple(value)
            else:
                changes[name] = value
        return replace(self, **changes)

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "the defaults"


def load_config(start: Path | None = None, *more: Path) -> Config:
    """The settings from the first ``pyproject.toml`` with ``[tool.babysit]`` above ``start``
    (a file or folder; default: the working directory), then above each of ``more``."""
    for origin in (start or Path.cwd(), *more):
        path = find_config(origin)
        if path is not None:
            return read_config(path)
    return Config()


def find_config(start: Path) -> Path | None:
    here = Path(start).expanduser().resolve()
    if not here.is_dir():
        here = here.parent
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and _table(candidate) is not None:
            return candidate
    return None


def read_config(path: Path) -> Config:
    table = _table(path)
    if table is None:
        return Config()
    values: dict[str, Any] = {"path": path}
    for key, value in table.items():
        if key == "thresholds":
            values["thresholds"] = _thresholds(path, value)
            continue
        if key not in _KEYS:
            raise BabysitError(_unknown_key(path, key))
        field_name, check, kind = _KEYS[key]
        try:
            values[field_name] = check(value)
        except (TypeError, ValueError):
            raise BabysitError(
                f"{path}: [tool.babysit] {key} = {value!r} is invalid: expected {kind}"
            ) from None
    if "select" in values or "ignore" in values:
        _validate_selectors(path, values.get("select"), values.get("ignore", ()))
    return Config(**values)


def _table(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as stream:
            document = tomllib.load(stream)
    except tomllib.TOMLDecodeError as exc:
        raise BabysitError(f"{path} is not valid TOML: {exc}") from exc
    except OSError as exc:
        raise BabysitError(f"cannot read {path}: {exc}") from exc
    tool = document.get("tool")
    table = tool.get("babysit") if isinstance(tool, dict) else None
    if table is not None and not isinstance(table, dict):
        raise BabysitError(f"{path}: [tool.babysit] must be a table")
    return table


def _unknown_key(path: Path, key: str) -> str:
    known = sorted([*_KEYS, "thresholds"])
    hint = ""
    spelled = key.replace("_", "-")
    if spelled in known:
        hint = f" (did you mean {spelled!r}? keys use dashes)"
    return f"{path}: unknown key {key!r} in [tool.babysit]{hint}; known keys: {', '.join(known)}"


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) and v for v in value):
        raise TypeError
    return tuple(value)


def _number(minimum: float, *, integer: bool = False, strict: bool = False):
    def check(value: Any) -> float | int:
        if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
            raise TypeError
        if value < minimum or (strict and value == minimum):
            raise ValueError
        return value if integer else float(value)

    return check


def _choice(choices: Sequence[str]):
    def check(value: Any) -> str:
        if not isinstance(value, str) or value.lower() not in choices:
            raise ValueError
        return value.lower()

    return check


#: Key in the file -> (Config field, value check, what the error message asks for)
_KEYS: dict[str, tuple[str, Any, str]] = {
    "select": ("select", _strings, "a list of check ids, id prefixes or names"),
    "ignore": ("ignore", _strings, "a list of check ids, id prefixes, names or ID:layer"),
    "exclude": ("exclude", _strings, "a list of glob patterns"),
    "fail-on": ("fail_on", _choice(FAIL_ON), f"one of {', '.join(FAIL_ON)}"),
    "format": ("format", _choice(FORMATS), f"one of {', '.join(FORMATS)}"),
    "max-steps": ("max_steps", _number(0, integer=True), "an integer >= 0 (0: no limit)"),
    "max-time": ("max_time", _number(0), "a number of seconds >= 0 (0: no limit)"),
    "max-epochs": ("max_epochs", _number(0, integer=True), "an integer >= 0 (0: no limit)"),
    "sample-every": ("sample_every", _number(1, integer=True), "an integer >= 1"),
    "overhead-budget": ("overhead_budget", _number(0), "a fraction >= 0"),
    "preflight-budget": ("preflight_budget", _number(0, strict=True), "a number of seconds > 0"),
}


def _thresholds(path: Path, value: Any) -> dict[str, dict[str, Any]]:
    from babysit.report import resolve_thresholds

    if not isinstance(value, dict):
        raise BabysitError(
            f"{path}: [tool.babysit] thresholds must be a table of tables such as "
            "[tool.babysit.thresholds.BS101]"
        )
    try:
        resolve_thresholds(value)
    except BabysitError as exc:
        raise BabysitError(f"{path}: [tool.babysit.thresholds]: {exc}") from None
    return {str(k): dict(v) for k, v in value.items()}


def _validate_selectors(path: Path, select: Sequence[str] | None, ignore: Sequence[str]) -> None:
    from babysit import registry

    for key, selectors in (("select", select or ()), ("ignore", ignore)):
        for selector in selectors:
            check = selector.partition(":")[0] if key == "ignore" else selector
            try:
                registry.select([check])
            except BabysitError:
                raise BabysitError(
                    f"{path}: [tool.babysit] {key}: {selector!r} matches no check; use an id "
                    "(BS101), an id prefix (BS1), a name (loss-at-init-not-chance) or ALL"
                    + (", optionally with :layer" if key == "ignore" else "")
                ) from None
