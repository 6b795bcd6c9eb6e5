"""Judging a Trace with the catalog, and the Report that carries the verdict."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import IO, Any

from babysit import registry
from babysit._version import __version__
from babysit.check import Check, Finding, Severity, iter_sorted
from babysit.errors import BabysitError, FindingsError
from babysit.trace import Trace

#: Version of the JSON report format (``Report.to_json``). Bumped on incompatible changes.
REPORT_SCHEMA = 1

INTERNAL_ERROR_ID = "BS000"


@dataclass
class Report:
    target: str
    findings: list[Finding]
    trace: Trace
    checks_run: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    #: Findings dropped because a baseline file accepted them (None: no baseline applied).
    baselined: int | None = None

    @property
    def ok(self) -> bool:
        """True when nothing at ``warning`` or above was found (``info`` notes are allowed)."""
        return not any(f.severity >= Severity.WARNING for f in self.findings)

    @property
    def summary(self) -> dict[str, int]:
        counts = {s.value: 0 for s in (Severity.ERROR, Severity.WARNING, Severity.INFO)}
        for finding in self.findings:
            counts[finding.severity.value] += 1
        return counts

    def failing(self, fail_on: str | Severity = "error") -> list[Finding]:
        if str(getattr(fail_on, "value", fail_on)).lower() == "never":
            return []
        threshold = Severity.parse(fail_on)
        return [f for f in self.findings if f.severity >= threshold]

    def exit_code(self, fail_on: str | Severity = "error") -> int:
        """0 when nothing reaches ``fail_on``, 1 otherwise; 3 when babysit itself failed."""
        if self.trace.errors:
            return 3
        return 1 if self.failing(fail_on) else 0

    def raise_for_findings(self, fail_on: str | Severity = "error") -> None:
        failing = self.failing(fail_on)
        if failing:
            from babysit.reporters.text import render_plain

            raise FindingsError(render_plain(self, failing), failing)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "schema": REPORT_SCHEMA,
            "babysit_version": __version__,
            "target": self.target,
            "findings": [f.to_dict() for f in self.findings],
            "summary": self.summary,
            "checks": {"run": list(self.checks_run), "skipped": dict(self.skipped)},
            "experiments": {
                name: {"skipped": result["skipped"]} if "skipped" in result else {"ran": True}
                for name, result in self.trace.experiments.items()
                if name != "protocol" and isinstance(result, dict)
            },
            "run": dict(self.trace.run),
            "notes": list(self.trace.notes),
        }
        if self.baselined is not None:
            data["baselined"] = self.baselined
        return data

    def to_json(self, indent: int | None = 2) -> str:
        from babysit.reporters.json import render

        return render(self, indent=indent)

    def print(self, file: IO[str] | None = None, *, verbose: bool = False) -> None:
        """The human report: summary line, one panel per finding, charts where checks ran."""
        from babysit.reporters.text import print_report

        print_report(self, file=file, verbose=verbose)

    def __str__(self) -> str:
        from babysit.reporters.text import render_plain

        return render_plain(self, self.findings)


def judge(
    trace: Trace,
    *,
    select: Iterable[str] | str | None = None,
    ignore: Iterable[str] | str | None = None,
    thresholds: Mapping[str, Mapping[str, Any]] | None = None,
) -> Report:
    """Run the selected checks over ``trace``. Checks are pure, so this can be repeated."""
    plain_ignore, scoped = _split_ignore(ignore)
    checks = registry.select(select, plain_ignore)
    # The internal-error check reports failures of the other checks too, so it runs last.
    checks.sort(key=lambda c: c.id == INTERNAL_ERROR_ID)
    overrides = resolve_thresholds(thresholds or {})
    findings: list[Finding] = []
    run: list[str] = []
    skipped: dict[str, str] = {}
    runnable: list[Check] = []
    for check_cls in checks:
        check = check_cls()
        reason = check.missing_requirements(trace)
        if reason:
            if _applicable(check_cls, trace.mode):
                skipped[check.name] = reason
            continue
        run.append(check.name)
        runnable.append(check)
    # File-major over a large tree: every static rule judges one chunk of sources, then the
    # next, so each chunk's parses and analyses are built once, reused by every rule and
    # evicted as later chunks come in: memory is bounded by the chunk, not the tree.
    chunked = len(trace.sources) > SOURCE_CHUNK
    static = [c for c in runnable if chunked and c.requires == ("sources",)]
    last = [c for c in runnable if c.id == INTERNAL_ERROR_ID]  # sees every other's errors
    broken: set[str] = set()  # a rule that raised once is not run on the other chunks
    for check in runnable:
        if check not in static and check not in last:
            findings.extend(_judge_one(check, trace, overrides, broken))
    for start in range(0, len(trace.sources) if static else 0, SOURCE_CHUNK):
        part = replace(trace, sources=trace.sources[start : start + SOURCE_CHUNK])
        for check in static:
            findings.extend(_judge_one(check, part, overrides, broken))
    for check in last:
        findings.extend(_judge_one(check, trace, overrides, broken))
    findings = [f for f in findings if not _suppressed(f, scoped)]
    if trace.sources:  # `# babysit: ignore[...]` comments on the lines findings point at
        from babysit.lint.suppressions import without_suppressed

        findings = without_suppressed(findings, trace.sources)
    findings = fold_consequences(findings, {c.name: c for c in checks})
    return Report(trace.target, list(iter_sorted(findings)), trace, run, skipped)


#: Static rules judge a trace with more sources than this chunk by chunk (see ``judge``);
#: the parse and analysis caches of :mod:`babysit.lint` hold twice as many entries.
SOURCE_CHUNK = 128


def _judge_one(
    check: Check, trace: Trace, overrides: Mapping[str, Mapping[str, Any]], broken: set[str]
) -> list[Finding]:
    if check.id in broken:
        return []
    try:
        return list(check.judge(trace, overrides.get(check.id)))
    except BabysitError:
        raise
    except Exception as exc:  # a broken check must not hide the others' verdicts
        broken.add(check.id)
        trace.errors.append({"probe": f"check {check.id}", "error": f"{type(exc).__name__}: {exc}"})
        return []


#: Trace sections a way in never records: checks that need them are not "skipped" there, they
#: do not apply (a pre-flight has no epochs, a watched loop no script source or experiments).
_NEVER_RECORDED = {
    "check": ("sources", "evals", "epochs", "gradients", "events", "run.grad_reset_checks"),
    "watch": ("sources", "experiments"),
    "lint": (
        "steps",
        "losses",
        "layers",
        "inputs",
        "batchnorm",
        "experiments",
        "evals",
        "epochs",
        "gradients",
        "events",
        "run",
        "facts",
    ),
}


def _applicable(check: type[Check], mode: str) -> bool:
    never = _NEVER_RECORDED.get(mode, ())
    return not any(req == n or req.startswith(n + ".") for req in check.requires for n in never)


def fold_consequences(findings: list[Finding], checks: Mapping[str, type[Check]]) -> list[Finding]:
    """Fold findings explained by another finding into it.

    A zero-initialized layer also makes gradients vanish, units look dead and the tiny batch
    impossible to overfit; reporting all five as separate problems buries the cause. Each
    check names the checks that explain it (``implied_by``). The root finding keeps the
    consequences in its evidence and takes the highest severity among them, so exit codes
    do not change.
    """
    loud = {f.name for f in findings if f.severity >= Severity.WARNING}

    def root_of(name: str, seen: frozenset[str] = frozenset()) -> str | None:
        check = checks.get(name)
        for cause in check.implied_by if check else ():
            if cause in loud and cause not in seen:
                return root_of(cause, seen | {name}) or cause
        return None

    kept: list[Finding] = []
    folded: dict[str, list[Finding]] = {}
    for finding in findings:
        root = root_of(finding.name)
        if root is None:
            kept.append(finding)
        else:
            folded.setdefault(root, []).append(finding)
    result = []
    for finding in kept:
        consequences = folded.pop(finding.name, None)
        if consequences and finding.severity >= Severity.WARNING:
            severity = max([finding.severity, *(c.severity for c in consequences)])
            evidence = dict(finding.evidence)
            evidence["also_explains"] = [f"{c.name}: {c.message}" for c in consequences]
            finding = replace(finding, severity=severity, evidence=evidence)
        result.append(finding)
    return result


def resolve_thresholds(
    thresholds: Mapping[str, Mapping[str, Any]],
) -> dict[str, Mapping[str, Any]]:
    """Validate per-check threshold overrides keyed by check id or name; keys become ids."""
    resolved: dict[str, Mapping[str, Any]] = {}
    for key, values in thresholds.items():
        check = registry.get(key)
        if not isinstance(values, Mapping):
            raise BabysitError(
                f"thresholds for {key!r} must be a mapping such as {{'name': value}}, "
                f"got {type(values).__name__}"
            )
        unknown = set(values) - set(check.thresholds)
        if unknown:
            known = ", ".join(sorted(check.thresholds)) or "none"
            raise BabysitError(
                f"check {check.id} ({check.name}) has no threshold(s) {sorted(unknown)}; "
                f"known: {known}"
            )
        for name, value in values.items():
            default = check.thresholds[name]
            numeric = isinstance(default, int | float) and not isinstance(default, bool)
            if numeric and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise BabysitError(
                    f"threshold {name!r} of {check.id} ({check.name}) must be a number like "
                    f"its default {default!r}, got {value!r}"
                )
        resolved[check.id] = values
    return resolved


def _split_ignore(
    ignore: Iterable[str] | str | None,
) -> tuple[list[str], list[tuple[str, str]]]:
    """Plain selectors, and ``ID:layer`` ones that suppress a check on one layer (and the
    layers inside it) only."""
    plain: list[str] = []
    scoped: list[tuple[str, str]] = []
    items = registry.as_selectors(ignore)
    for item in items:
        selector, sep, layer = str(item).partition(":")
        if sep and layer:
            registry.select([selector])  # validates the selector
            scoped.append((selector, layer))
        else:
            plain.append(selector)
    return plain, scoped


def _suppressed(finding: Finding, pairs: list[tuple[str, str]]) -> bool:
    layer = finding.location.layer if finding.location else None
    if not layer:
        return False
    for selector, prefix in pairs:
        matches = selector.upper() in (finding.id, "ALL") or selector.lower() == finding.name
        if matches and (layer == prefix or layer.startswith(prefix + ".")):
            return True
    return False
