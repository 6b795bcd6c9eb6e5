"""The pytest plugin: a ``babysit`` fixture, a ``babysit`` marker and a summary section.

Registered through the ``pytest11`` entry point, so pytest imports it in every run of every
project where babysit is installed: it imports neither torch nor ``babysit.api`` until a test
asks for the fixture, and prints nothing unless a test used it.

    def test_model_trains(babysit):
        model, (x, y), loss_fn = make_model()
        babysit.assert_trainable(model, x, y, loss_fn)

    @pytest.mark.babysit(fail_on="warning", ignore=["BS501"], budget=10)
    def test_strict(babysit): ...

``fail_on`` defaults to ``--babysit-fail-on`` or the ``babysit_fail_on`` ini option, else to
each assertion's own default (``error``; ``warning`` for the loss-at-chance and gradient-flow
assertions). Options given to a call win over the marker, which wins over the configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from babysit.report import Report

FAIL_ON_CHOICES = ("error", "warning", "info", "never")
#: Keyword arguments of ``@pytest.mark.babysit(...)``: defaults for the fixture in that test.
MARKER_OPTIONS = ("fail_on", "select", "ignore", "thresholds", "budget", "experiments")
MARKER_HELP = (
    "babysit(fail_on=, select=, ignore=, thresholds=, budget=, experiments=): defaults for "
    "the babysit fixture in this test"
)
_PROPERTY = "babysit"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("babysit", "babysit: pre-flight checks of PyTorch models")
    group.addoption(
        "--babysit-fail-on",
        dest="babysit_fail_on",
        choices=FAIL_ON_CHOICES,
        default=None,
        help="Lowest severity that fails the babysit fixture's assertions "
        "(default: each assertion's own, error for assert_trainable).",
    )
    parser.addini(
        "babysit_fail_on",
        "Lowest severity that fails the babysit fixture's assertions: "
        + ", ".join(FAIL_ON_CHOICES),
        default="",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    configured_fail_on(config)  # a bad ini value is a usage error now, not in some test
    config.pluginmanager.register(_Summary(), "babysit-summary")


def pytest_report_header(config: pytest.Config) -> str | None:
    fail_on = configured_fail_on(config)
    return f"babysit: fail_on={fail_on}" if fail_on else None


def configured_fail_on(config: pytest.Config) -> str | None:
    """``--babysit-fail-on``, else the ``babysit_fail_on`` ini value, else None."""
    value = config.getoption("babysit_fail_on", None) or config.getini("babysit_fail_on")
    if not value:
        return None
    value = str(value).strip().lower()
    if value not in FAIL_ON_CHOICES:
        raise pytest.UsageError(
            f"babysit_fail_on = {value!r}: choose one of {', '.join(FAIL_ON_CHOICES)}"
        )
    return value


class Babysit:
    """The ``babysit`` fixture: :func:`babysit.check` and the :mod:`babysit.testing`
    assertions, with defaults from the marker and the pytest configuration.

    Every report it produces is listed in the ``babysit`` section of the terminal summary and
    stored in the test's ``user_properties`` (so JUnit XML carries it too).
    """

    def __init__(
        self,
        *,
        fail_on: str | None = None,
        options: Mapping[str, Any] | None = None,
        record: Callable[[Report], None] | None = None,
    ) -> None:
        options = dict(options or {})
        self.fail_on = options.pop("fail_on", None) or fail_on
        self.options = options
        self.reports: list[Report] = []
        self._record = record

    def check(
        self,
        model: Any,
        inputs: Any,
        targets: Any = None,
        loss_fn: Callable[..., Any] | None = None,
        optimizer: Any = None,
        **options: Any,
    ) -> Report:
        """:func:`babysit.check` with this test's defaults; returns the Report."""
        from babysit.api import check

        report = check(
            model,
            inputs,
            targets,
            loss_fn=loss_fn,
            optimizer=optimizer,
            **{**self.options, **options},
        )
        self.reports.append(report)
        if self._record is not None:
            self._record(report)
        return report

    def assert_trainable(
        self,
        model: Any,
        inputs: Any,
        targets: Any = None,
        loss_fn: Callable[..., Any] | None = None,
        optimizer: Any = None,
        *,
        fail_on: str | None = None,
        **options: Any,
    ) -> Report:
        """Fail the test when the full pre-flight finds anything at or above ``fail_on``."""
        __tracebackhide__ = True
        report = self.check(model, inputs, targets, loss_fn, optimizer, **options)
        return self.assert_no_findings(report, fail_on=fail_on)

    def assert_loss_at_chance(
        self,
        model: Any,
        inputs: Any,
        targets: Any = None,
        loss_fn: Callable[..., Any] | None = None,
        optimizer: Any = None,
        *,
        fail_on: str | None = None,
        **options: Any,
    ) -> Report:
        """Fail when the loss at init is far from chance level (one forward pass)."""
        __tracebackhide__ = True
        from babysit.testing import LOSS_AT_CHANCE

        options = {**options, "select": LOSS_AT_CHANCE, "experiments": False}
        report = self.check(model, inputs, targets, loss_fn, optimizer, **options)
        return self.assert_no_findings(report, fail_on=self._fail_on(fail_on, "warning"))

    def assert_can_overfit(
        self,
        model: Any,
        inputs: Any,
        targets: Any = None,
        loss_fn: Callable[..., Any] | None = None,
        optimizer: Any = None,
        *,
        fail_on: str | None = None,
        **options: Any,
    ) -> Report:
        """Fail when a tiny batch cannot be overfit (with the cause, when one is known)."""
        __tracebackhide__ = True
        from babysit.testing import overfit_selection

        options = {**options, "select": overfit_selection()}
        report = self.check(model, inputs, targets, loss_fn, optimizer, **options)
        return self.assert_no_findings(report, fail_on=self._fail_on(fail_on, "error"))

    def assert_gradients_flow(
        self,
        model: Any,
        inputs: Any,
        targets: Any = None,
        loss_fn: Callable[..., Any] | None = None,
        optimizer: Any = None,
        *,
        fail_on: str | None = None,
        **options: Any,
    ) -> Report:
        """Fail when parameters get no gradient, layers start symmetric, or activations
        vanish or explode through depth."""
        __tracebackhide__ = True
        from babysit.testing import GRADIENTS_FLOW

        options = {**options, "select": GRADIENTS_FLOW}
        report = self.check(model, inputs, targets, loss_fn, optimizer, **options)
        return self.assert_no_findings(report, fail_on=self._fail_on(fail_on, "warning"))

    def assert_no_findings(self, report: Report, *, fail_on: str | None = None) -> Report:
        """Fail when ``report`` has findings at or above ``fail_on``."""
        __tracebackhide__ = True
        from babysit.testing import assert_no_findings

        return assert_no_findings(report, fail_on=self._fail_on(fail_on, "error"))

    def _fail_on(self, explicit: str | None, default: str) -> str:
        return explicit or self.fail_on or default


@pytest.fixture
def babysit(request: pytest.FixtureRequest) -> Babysit:
    """Pre-flight checks for PyTorch models: ``babysit.assert_trainable(model, x, y, loss_fn)``."""
    node = request.node
    return Babysit(
        fail_on=configured_fail_on(request.config),
        options=marker_options(node),
        record=lambda report: node.user_properties.append((_PROPERTY, describe(report))),
    )


def marker_options(node: pytest.Item) -> dict[str, Any]:
    """The keyword arguments of the ``babysit`` markers on ``node``, the closest winning."""
    options: dict[str, Any] = {}
    for marker in reversed(list(node.iter_markers(name="babysit"))):
        unknown = sorted(set(marker.kwargs) - set(MARKER_OPTIONS))
        if marker.args or unknown:
            pytest.fail(
                f"@pytest.mark.babysit takes keyword arguments {', '.join(MARKER_OPTIONS)}; "
                f"got {list(marker.args) + unknown}",
                pytrace=False,
            )
        options.update(marker.kwargs)
    fail_on = options.get("fail_on")
    if fail_on is not None and str(fail_on).lower() not in FAIL_ON_CHOICES:
        pytest.fail(
            f"@pytest.mark.babysit(fail_on={fail_on!r}): choose one of "
            + ", ".join(FAIL_ON_CHOICES),
            pytrace=False,
        )
    return options


def describe(report: Report) -> str:
    """One line for the summary section and ``user_properties``."""
    counts = [
        f"{n} {severity}{'s' if n > 1 and severity != 'info' else ''}"
        for severity, n in report.summary.items()
        if n
    ]
    if not counts:
        run = len(report.checks_run)
        return f"{report.target}: no findings ({run} check{'' if run == 1 else 's'} run)"
    names = ", ".join(f"{f.severity.value} {f.id} {f.name}" for f in report.findings)
    return f"{report.target}: {', '.join(counts)}: {names}"


class _Summary:
    """Collects the fixture's reports from test reports (this works under pytest-xdist too,
    where tests run in other processes) and lists them after the run."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # user_properties accumulate over setup, call and teardown: read them once, at the end
        if report.when == "teardown":
            for key, value in report.user_properties:
                if key == _PROPERTY:
                    self.lines.append((report.nodeid, str(value)))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.lines:
            return
        terminalreporter.write_sep("=", "babysit")
        for nodeid, line in self.lines:
            terminalreporter.write_line(f"{nodeid}: {line}")
