"""What every trainer callback does with babysit, whatever the trainer.

A callback either *joins* the session that is already running (``babysit audit``, or a
``babysit.watch`` block around ``trainer.fit``) and only feeds it what the trainer knows
(epochs, logged validation losses), or *runs its own* discovering session for the length of
the training run and reports at its end. Nothing here imports a trainer library.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from babysit import _autostart
from babysit.errors import BabysitError
from babysit.report import Report, judge
from babysit.reporters import FORMATS
from babysit.session import Session, current_session
from babysit.trace import Trace

#: Metric names a validation loss is logged under, tried in this order.
VAL_LOSS_KEYS = (
    "val_loss",
    "valid_loss",
    "val/loss",
    "validation_loss",
    "valid/loss",
    "validation/loss",
    "val_loss_epoch",
    "loss/val",
    "eval_loss",
)
_SUFFIX_FORMATS = {".json": "json", ".html": "html", ".sarif": "sarif", ".xml": "junit"}
_FAIL_ON = ("error", "warning", "info", "never")


class Babysitter:
    """The trainer-independent half of a callback: one per callback, one session per run."""

    def __init__(
        self,
        source: str,
        *,
        fail_on: str = "never",
        output: str | Path | None = None,
        format: str | None = None,
        print_report: bool = True,
        sample_every: int = 10,
        overhead_budget: float | None = 0.03,
        select: Iterable[str] | str | None = None,
        ignore: Iterable[str] | str | None = None,
        thresholds: Mapping[str, Mapping[str, Any]] | None = None,
        val_loss_key: str | Sequence[str] | None = None,
        autostart: _autostart.Autostart | None = None,
    ) -> None:
        if fail_on not in _FAIL_ON:
            raise BabysitError(f"fail_on must be one of {', '.join(_FAIL_ON)}, got {fail_on!r}")
        if not isinstance(sample_every, int) or sample_every < 1:
            raise BabysitError(f"sample_every must be a positive integer, got {sample_every!r}")
        if overhead_budget is not None and not overhead_budget > 0:
            raise BabysitError(f"overhead_budget must be > 0 or None, got {overhead_budget!r}")
        self.output = Path(output) if output is not None else None
        fmt = format or (_SUFFIX_FORMATS.get(self.output.suffix, "text") if self.output else "text")
        if fmt not in FORMATS:
            raise BabysitError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        self.source = source
        self.fail_on = fail_on
        self.format = fmt
        self.print_report = print_report
        self.sample_every = sample_every
        self.overhead_budget = overhead_budget
        self.judge_args = {"select": select, "ignore": ignore, "thresholds": thresholds}
        judge(Trace(), **self.judge_args)  # bad selectors fail now, not after training
        if isinstance(val_loss_key, str):
            val_loss_key = (val_loss_key,)
        self.val_loss_keys: tuple[str, ...] = tuple(val_loss_key or VAL_LOSS_KEYS)
        self.autostart = autostart
        self.session: Session | None = None
        self.owned = False
        self.report: Report | None = None
        self._missing_noted = False

    # -- the run -----------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.session is not None

    def begin(self, target: str, model: torch.nn.Module | None = None, rank: int = 0) -> Session:
        """Join the running session, or start a discovering one of our own.

        Our own session discovers the model as ``babysit audit`` does (the module whose
        forward runs first in training mode), because a trainer's module is not always the one
        called: a LightningModule's ``training_step`` often calls ``self.model(x)``."""
        self.report = None
        running = current_session()
        if running is not None:
            self.session, self.owned = running, False
            return running
        trace = Trace(mode="watch", target=target)
        trace.run["trainer"] = self.source
        session = Session(
            trace,
            sample_every=self.sample_every,
            overhead_budget=self.overhead_budget,
            discover=True,
        )
        session.start()
        self.session, self.owned = session, True
        if self.autostart is not None:
            self.autostart.mark_running(rank)
        try:
            if model is not None:
                session.add_model(model)
        except BaseException:
            self.finish(error=None, publish=False)
            raise
        return session

    def add_optimizers(self, optimizers: Iterable[Any]) -> None:
        """Our own session's step clock is the first optimizer; a joined session already
        discovers (audit) or was told (watch) which one to follow."""
        if not self.owned or self.session is None:
            return
        for optimizer in optimizers:
            optimizer = getattr(optimizer, "optimizer", optimizer)  # Lightning/accelerate wrappers
            if isinstance(optimizer, torch.optim.Optimizer):
                self.session.add_optimizer(optimizer)

    def epoch_started(self) -> None:
        session = self.session or current_session()
        if session is not None:
            session.record_epoch(source=self.source)

    def validation(self, metrics: Mapping[str, Any], epoch: int | None = None) -> bool:
        """Record the validation loss found in ``metrics``; False when there is none."""
        session = self.session or current_session()
        if session is None:
            return False
        value = self._val_loss(metrics)
        if value is None:
            if not self._missing_noted:
                self._missing_noted = True
                session.trace.notes.append(
                    f"{self.source}: no validation loss among the logged metrics (looked for "
                    f"{', '.join(self.val_loss_keys)}); pass val_loss_key= to BabysitCallback"
                )
            return False
        session.record_validation(value, source=self.source, epoch=epoch)
        return True

    def _val_loss(self, metrics: Mapping[str, Any]) -> float | torch.Tensor | None:
        for key in self.val_loss_keys:
            value = metrics.get(key)
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                return value
            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                return float(value)
        return None

    def finish(
        self, *, error: BaseException | None = None, publish: bool = True, rank: int = 0
    ) -> Report | None:
        """End our own session (a joined one belongs to whoever started it) and report.

        ``publish`` prints and saves the report on the main process; a child process started
        by ``babysit audit`` (DDP ranks > 0) saves its trace for the parent instead. With
        ``fail_on``, findings at or above it raise :class:`babysit.FindingsError`, unless the
        run already failed."""
        session, owned = self.session, self.owned
        self.session, self.owned = None, False
        if session is None or not owned:
            return None
        trace = session.close()
        if error is not None:
            trace.run["error"] = f"{type(error).__name__}: {error}"
        if self.autostart is not None and self.autostart.directory is not None:
            self.autostart.save_trace(trace, rank)
            if not self.autostart.report:
                return None
        self.report = report = judge(trace, **self.judge_args)
        if publish and rank == 0:
            self._publish(report)
            if error is None:
                report.raise_for_findings(self.fail_on)
        return report

    def _publish(self, report: Report) -> None:
        from babysit.reporters import render

        if self.output is not None:
            try:
                self.output.write_text(render(report, self.format), encoding="utf-8")
            except OSError as exc:
                raise BabysitError(
                    f"cannot write the babysit report to {self.output}: {exc}"
                ) from exc
        if self.print_report:
            report.print()


def epoch_number(value: float | None) -> int | None:
    """A trainer's fractional epoch counter (2.0 after two epochs, 2.5 mid-third) as the
    1-based training epoch a measurement belongs to."""
    if value is None or not math.isfinite(value) or value <= 0:
        return None
    return max(1, math.ceil(value - 1e-9))
