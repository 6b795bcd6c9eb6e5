"""The vocabulary every check speaks: severities, findings, locations and the Check base class.

A check is a pure function of a :class:`~babysit.trace.Trace`. It never touches torch hooks or
does I/O; it reads recorded numbers and returns frozen :class:`Finding` objects.
"""

from __future__ import annotations

import enum
import inspect
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from babysit.trace import Trace


class Severity(enum.Enum):
    """How bad a finding is. Ordered: ``INFO < WARNING < ERROR``."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def __lt__(self, other: Severity) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: Severity) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    @classmethod
    def parse(cls, value: str | Severity) -> Severity:
        if isinstance(value, Severity):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            choices = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown severity {value!r}; choose one of {choices}") from None


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


@dataclass(frozen=True)
class Location:
    """Where a finding points: a layer (module name) and/or a script line (and column, 1-based,
    for static findings)."""

    layer: str | None = None
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = []
        if self.file:
            where = self.file
            if self.line:
                where += f":{self.line}" + (f":{self.column}" if self.column else "")
            parts.append(where)
        if self.layer:
            parts.append(f"layer {self.layer}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Location | None:
        if not data:
            return None
        return cls(
            layer=data.get("layer"),
            file=data.get("file"),
            line=data.get("line"),
            column=data.get("column"),
        )


@dataclass(frozen=True)
class Finding:
    """One problem, with the numbers behind it and what to do about it."""

    id: str
    name: str
    severity: Severity
    message: str
    fix: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    location: Location | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "severity": self.severity.value,
            "message": self.message,
            "fix": self.fix,
            "evidence": dict(self.evidence),
            "location": self.location.to_dict() if self.location else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        return cls(
            id=data["id"],
            name=data["name"],
            severity=Severity.parse(data["severity"]),
            message=data["message"],
            fix=data["fix"],
            evidence=dict(data.get("evidence") or {}),
            location=Location.from_dict(data.get("location")),
        )


class Check:
    """Base class of every catalog entry.

    Subclasses set the class attributes and implement :meth:`run`. The class docstring is the
    rule's documentation and must have the sections ``What it does``, ``Why is this bad?``,
    ``Example``, ``Fix``, ``Thresholds`` and ``References`` (``babysit explain`` prints it).
    """

    id: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity]
    summary: ClassVar[str]
    #: Trace sections the check reads; when all are empty the check is skipped, with a reason.
    requires: ClassVar[tuple[str, ...]] = ()
    #: JSON-able defaults, overridable per run.
    thresholds: ClassVar[Mapping[str, Any]] = {}
    #: Checks whose warning/error findings explain this one: when one of them fires, this
    #: check's findings are folded into it (a consequence is not reported as a second problem).
    implied_by: ClassVar[tuple[str, ...]] = ()

    DOC_SECTIONS: ClassVar[tuple[str, ...]] = (
        "What it does",
        "Why is this bad?",
        "Example",
        "Fix",
        "Thresholds",
        "References",
    )

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        raise NotImplementedError

    def judge(self, trace: Trace, overrides: Mapping[str, Any] | None = None) -> list[Finding]:
        """Run the check with its default thresholds merged with ``overrides``."""
        merged = dict(self.thresholds)
        for key, value in (overrides or {}).items():
            if key not in merged:
                known = ", ".join(sorted(merged)) or "none"
                raise ValueError(
                    f"check {self.id} ({self.name}) has no threshold {key!r}; known: {known}"
                )
            merged[key] = value
        return list(self.run(trace, merged))

    def missing_requirements(self, trace: Trace) -> str | None:
        """Why the check cannot run on ``trace``, or ``None`` when it can."""
        absent = [section for section in self.requires if not trace.has(section)]
        if absent:
            return "no " + " / ".join(s.replace("_", " ") for s in absent) + " recorded"
        for section in self.requires:
            head, _, name = section.partition(".")
            if head == "experiments" and name:
                skipped = trace.experiments.get(name, {}).get("skipped")
                if skipped:
                    return f"the {name.replace('_', ' ')} experiment was skipped: {skipped}"
        return None

    def finding(
        self,
        message: str,
        fix: str,
        *,
        evidence: Mapping[str, Any] | None = None,
        layer: str | None = None,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        severity: Severity | None = None,
    ) -> Finding:
        location = Location(layer, file, line, column) if (layer or file) else None
        return Finding(
            id=self.id,
            name=self.name,
            severity=severity or self.severity,
            message=message,
            fix=fix,
            evidence=_jsonable(evidence or {}),
            location=location,
        )

    @classmethod
    def doc(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def doc_sections(cls) -> dict[str, str]:
        """The docstring split by its ``## Section`` headings."""
        sections: dict[str, str] = {}
        current = None
        lines: list[str] = []
        for raw in cls.doc().splitlines():
            heading = re.match(r"^##\s+(.+?)\s*$", raw)
            if heading:
                if current is not None:
                    sections[current] = "\n".join(lines).strip()
                current, lines = heading.group(1), []
            elif current is not None:
                lines.append(raw)
        if current is not None:
            sections[current] = "\n".join(lines).strip()
        return sections

    @classmethod
    def metadata(cls) -> dict[str, Any]:
        return {
            "id": cls.id,
            "name": cls.name,
            "severity": cls.severity.value,
            "summary": cls.summary,
            "requires": list(cls.requires),
            "thresholds": dict(cls.thresholds),
        }


def _jsonable(value: Any) -> Any:
    """Round floats and turn tuples into lists so evidence survives a JSON round trip."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        return float(f"{value:.6g}")
    if isinstance(value, bool | int | str) or value is None:
        return value
    return str(value)


def iter_sorted(findings: Iterable[Finding]) -> Iterator[Finding]:
    """Most severe first, then by id, then by location."""
    yield from sorted(
        findings, key=lambda f: (-f.severity.rank, f.id, str(f.location or ""), f.message)
    )
