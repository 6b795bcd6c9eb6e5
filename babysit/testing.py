"""Assertions for test suites: a model's pre-flight as a unit test.

    from babysit.testing import assert_trainable

    def test_model_is_trainable():
        model = build_model()
        x, y = next(iter(train_loader))
        assert_trainable(model, x, y, nn.CrossEntropyLoss())

Each ``assert_*`` runs :func:`babysit.check` on a copy of the model and raises an
``AssertionError`` (a :class:`babysit.FindingsError`, with ``.findings``) whose message reads
like the terminal report: each failing finding, its evidence, its fix. When nothing reaches
``fail_on`` it returns the :class:`babysit.Report`. The pytest plugin's ``babysit`` fixture
offers the same assertions with defaults taken from the pytest configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from babysit import registry
from babysit.api import Selectors, Thresholds, check
from babysit.check import Severity
from babysit.errors import BabysitError, FindingsError
from babysit.report import Report

FailOn = str | Severity

#: What each finer assertion runs. The overfit selection adds the checks that explain a failed
#: overfit run (``implied_by``), so a zero-initialized model fails with the cause, not only the
#: symptom.
LOSS_AT_CHANCE = ("loss-at-init-not-chance",)
GRADIENTS_FLOW = ("parameters-without-gradient", "symmetric-init", "activation-variance-unstable")
CAN_OVERFIT = "cannot-overfit-tiny-batch"


def assert_trainable(
    model: nn.Module,
    inputs: Any,
    targets: Any = None,
    loss_fn: Callable[..., Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    select: Selectors = None,
    ignore: Selectors = None,
    thresholds: Thresholds = None,
    fail_on: FailOn = "error",
    budget: float = 30.0,
) -> Report:
    """Fail when the full pre-flight finds anything at or above ``fail_on``."""
    __tracebackhide__ = True
    return _checked(
        model,
        inputs,
        targets,
        loss_fn,
        optimizer,
        fail_on,
        select=select,
        ignore=ignore,
        thresholds=thresholds,
        budget=budget,
    )


def assert_loss_at_chance(
    model: nn.Module,
    inputs: Any,
    targets: Any = None,
    loss_fn: Callable[..., Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    thresholds: Thresholds = None,
    fail_on: FailOn = "warning",
) -> Report:
    """Fail when the loss at init is far from chance level (``loss-at-init-not-chance``).

    Only one forward pass runs (no experiments), so this is cheap enough for every model.
    """
    __tracebackhide__ = True
    return _checked(
        model,
        inputs,
        targets,
        loss_fn,
        optimizer,
        fail_on,
        select=LOSS_AT_CHANCE,
        thresholds=thresholds,
        experiments=False,
    )


def assert_can_overfit(
    model: nn.Module,
    inputs: Any,
    targets: Any = None,
    loss_fn: Callable[..., Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    ignore: Selectors = None,
    thresholds: Thresholds = None,
    fail_on: FailOn = "error",
    budget: float = 30.0,
) -> Report:
    """Fail when a tiny batch cannot be overfit, reporting the cause when one is known
    (``cannot-overfit-tiny-batch`` and the checks that explain it)."""
    __tracebackhide__ = True
    return _checked(
        model,
        inputs,
        targets,
        loss_fn,
        optimizer,
        fail_on,
        select=overfit_selection(),
        ignore=ignore,
        thresholds=thresholds,
        budget=budget,
    )


def assert_gradients_flow(
    model: nn.Module,
    inputs: Any,
    targets: Any = None,
    loss_fn: Callable[..., Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    ignore: Selectors = None,
    thresholds: Thresholds = None,
    fail_on: FailOn = "warning",
    budget: float = 30.0,
) -> Report:
    """Fail when parameters get no gradient, layers start symmetric, or activations vanish or
    explode through depth at init."""
    __tracebackhide__ = True
    return _checked(
        model,
        inputs,
        targets,
        loss_fn,
        optimizer,
        fail_on,
        select=GRADIENTS_FLOW,
        ignore=ignore,
        thresholds=thresholds,
        budget=budget,
    )


def _checked(
    model: nn.Module,
    inputs: Any,
    targets: Any,
    loss_fn: Callable[..., Any] | None,
    optimizer: torch.optim.Optimizer | None,
    fail_on: FailOn,
    **options: Any,
) -> Report:
    """:func:`babysit.check` with ``options``, then :func:`assert_no_findings`."""
    __tracebackhide__ = True
    report = check(model, inputs, targets, loss_fn=loss_fn, optimizer=optimizer, **options)
    return assert_no_findings(report, fail_on=fail_on)


def assert_no_findings(report: Report, *, fail_on: FailOn = "error") -> Report:
    """Fail when ``report`` has findings at or above ``fail_on`` (``"never"`` never fails)."""
    __tracebackhide__ = True
    if not isinstance(report, Report):
        raise BabysitError(f"expected a babysit Report, got {type(report).__name__}")
    level = parse_fail_on(fail_on)
    failing = report.failing(level)
    if failing:
        from babysit.reporters.text import render_plain

        name = getattr(level, "value", level)
        header = f"babysit found {len(failing)} problem(s) at or above fail_on={name!r}"
        raise FindingsError(header + "\n\n" + render_plain(report, failing), failing)
    return report


def parse_fail_on(value: FailOn) -> str | Severity:
    """Validate a ``fail_on`` value: a severity name, a :class:`Severity`, or ``"never"``."""
    if isinstance(value, Severity):
        return value
    if isinstance(value, str) and value.lower() == "never":
        return "never"
    try:
        return Severity.parse(value)
    except ValueError:
        raise BabysitError(
            f"fail_on must be one of error, warning, info, never; got {value!r}"
        ) from None


def overfit_selection() -> tuple[str, ...]:
    """``cannot-overfit-tiny-batch`` and every check that can explain it, transitively."""
    names: list[str] = []
    pending = [CAN_OVERFIT]
    while pending:
        name = pending.pop(0)
        if name in names:
            continue
        names.append(name)
        pending.extend(registry.get(name).implied_by)
    return tuple(names)


__all__ = [
    "assert_can_overfit",
    "assert_gradients_flow",
    "assert_loss_at_chance",
    "assert_no_findings",
    "assert_trainable",
]
