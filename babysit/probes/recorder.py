"""The Recorder: the step clock, the sampling schedule and the one-sync-per-step buffer.

Probes never call ``.item()``. They hand the Recorder small tensors (reductions computed on the
tensor's own device) together with a callback that stores the numbers in the Trace. At the end
of a sampled step :meth:`Recorder.flush` concatenates every pending tensor per device and
brings each device's buffer to the host with a single copy.
"""

from __future__ import annotations

import functools
import math
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from babysit.trace import Trace


class StopRun(BaseException):
    """Raised from a hook to end the observed run once a budget is spent.

    A ``BaseException`` so that the user's ``except Exception`` blocks let it pass, like
    ``KeyboardInterrupt``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Schedule:
    """Which steps are sampled: step 0, then every ``every``-th step, stretched when a
    sampled step costs more than ``budget`` × the unsampled step time per interval.

    With ``budget=None`` the schedule is exactly every ``every``-th step. With a budget (the
    default for ``watch`` and ``audit``: 3 %), the interval after each sampled step becomes
    ``max(every, extra / (budget × plain))``, where ``extra`` is the measured extra time of the
    sampled steps and ``plain`` that of an unsampled step, capped at ``max_every``. On a large
    model a sampled step is cheap relative to the step and ``every`` holds; on a tiny MLP whose
    steps take well under a millisecond the interval grows until the overhead fits.
    """

    every: int = 10
    budget: float | None = None
    #: the longest interval the budget may stretch to (at least ``every``)
    max_every: int = 100

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"sample_every must be >= 1, got {self.every}")
        if self.budget is not None and not self.budget > 0:
            raise ValueError(f"overhead budget must be > 0, got {self.budget}")
        if self.max_every < self.every:
            object.__setattr__(self, "max_every", self.every)


Callback = Callable[[list[float]], None]

#: Every step is recorded in ``trace.steps`` up to this step; sampled steps only afterwards.
DENSE_STEPS = 2000
#: Flush early rather than hold more deferred tensors than this.
MAX_PENDING = 4096
#: Histories that grow by one entry per sampled step (``trace.gradients``, the sampled step
#: records after DENSE_STEPS, the not-reset checks) are halved when they reach this length, so
#: a run of millions of steps keeps a bounded trace (a 160-layer model's gradient samples
#: would otherwise grow by ~30 kB per sample, gigabytes over a long run).
MAX_HISTORY = 1024
#: The newest entries a halving keeps whole: recent behaviour stays at full resolution.
RECENT_HISTORY = 128


def thin_history(entries: list[Any], start: int = 0) -> None:
    """Halve the older part of ``entries[start:]`` once it holds MAX_HISTORY entries: its first
    entry (step 0 for the gradient samples) and the newest RECENT_HISTORY stay, every other
    one between goes, as for the layers' activation samples. Older history gets sparser,
    never longer."""
    if len(entries) - start < MAX_HISTORY:
        return
    del entries[start + 1 : len(entries) - RECENT_HISTORY : 2]


class Recorder:
    def __init__(self, trace: Trace, schedule: Schedule | None = None) -> None:
        self.trace = trace
        self.schedule = schedule or Schedule()
        self.step = 0
        self.sampling = True  # step 0: the model at init
        self.next_sample = self.schedule.every
        self.sampled_steps = 0
        self._pending: list[tuple[torch.Tensor, Callback]] = []
        self._scalars: list[tuple[dict[str, Any], str, torch.Tensor]] = []
        self.disabled: set[str] = set()
        self._last = time.perf_counter()
        self._plain: float | None = None  # EMA of an unsampled step's seconds
        self._extra: float | None = None  # EMA of a sampled step's extra seconds
        self._step0: float | None = None  # step 0's seconds, until a plain step is timed
        self._sparse_start: int | None = None  # index of the first step record past DENSE_STEPS

    # -- step clock -------------------------------------------------------------------------
    def advance(self) -> None:
        """Close the current step and open the next one.

        Pending values are brought to the host at the end of sampled steps only, so unsampled
        steps cost no synchronization (their per-step loss waits, as a 0-d tensor, for the
        next sampled step).
        """
        was_sampling = self.sampling
        if was_sampling or len(self._pending) + len(self._scalars) >= MAX_PENDING:
            self.flush()
        now = time.perf_counter()
        elapsed, self._last = now - self._last, now
        if was_sampling:
            self.sampled_steps += 1
            self._schedule_after_sample(elapsed)
            self._thin_histories()
        elif self.step > 0:
            first_plain = self._plain is None
            self._plain = elapsed if first_plain else 0.9 * self._plain + 0.1 * elapsed
            if first_plain and self._step0 is not None:
                # step 0 could not be judged before an unsampled step was timed
                self._schedule_after_sample(self._step0, at=0)
        self.step += 1
        self.sampling = self.step == self.next_sample

    def _schedule_after_sample(self, elapsed: float, at: int | None = None) -> None:
        """Set the next sampled step from the cost of the sampled step that just ended (or of
        step ``at``). Step 0 also carries one-time costs (the first forward's extra statistics,
        lazy initialization), which makes the first interval a conservative one."""
        schedule = self.schedule
        at = self.step if at is None else at
        interval = schedule.every
        if schedule.budget is not None:
            if self._plain is None:
                self._step0 = elapsed  # judged once an unsampled step has been timed
            else:
                extra = max(elapsed - self._plain, 0.0)
                self._extra = extra if self._extra is None else 0.5 * self._extra + 0.5 * extra
                wanted = math.ceil(self._extra / (schedule.budget * self._plain))
                interval = min(max(interval, wanted), schedule.max_every)
        self.next_sample = max(self.next_sample, at + interval) if at == 0 else at + interval
        self.trace.run["sample_interval"] = interval

    def step_record(self, step: int | None = None) -> dict[str, Any] | None:
        """The ``trace.steps`` entry for ``step`` (created on demand), or None when the step
        falls outside the recorded series (dense for the first steps, sampled afterwards)."""
        step = self.step if step is None else step
        steps = self.trace.steps
        if steps and steps[-1]["step"] == step:
            return steps[-1]
        if step >= DENSE_STEPS:
            if not (step == self.step and self.sampling):
                return None
            if self._sparse_start is None:
                self._sparse_start = len(steps)
        record: dict[str, Any] = {"step": step}
        steps.append(record)
        return record

    def _thin_histories(self) -> None:
        trace = self.trace
        thin_history(trace.gradients)
        if self._sparse_start is not None:
            thin_history(trace.steps, self._sparse_start)
        checks = trace.run.get("grad_reset_checks")
        if isinstance(checks, list):
            thin_history(checks)

    def series(self, key: str, value: float | torch.Tensor, step: int | None = None) -> None:
        """Set ``key`` on a step record, deferring the host copy when ``value`` is a tensor."""
        record = self.step_record(step)
        if record is None or key in record:
            return
        if isinstance(value, torch.Tensor):
            record[key] = None  # placeholder, filled at the next flush
            # no closure per step: scalars are stacked in one op at the flush
            self._scalars.append((record, key, value))
        else:
            record[key] = value

    # -- deferred host transfer --------------------------------------------------------------
    def defer(self, values: torch.Tensor, callback: Callback) -> None:
        """Queue ``values`` (detached, any shape) for the next flush; ``callback`` gets them as
        a list of floats. Nothing is computed here: this runs inside hooks on every step."""
        self._pending.append((values, callback))

    def flush(self) -> None:
        if self._scalars:
            scalars, self._scalars = self._scalars, []
            by_device: dict[torch.device, list[tuple[dict[str, Any], str, torch.Tensor]]] = {}
            for item in scalars:
                by_device.setdefault(item[2].device, []).append(item)
            for items in by_device.values():
                try:
                    stacked = torch.stack([_flat32(t).reshape(()) for _, _, t in items])
                except Exception as exc:  # a lost device: never break training
                    self.record_error("flush", exc)
                    continue

                def fill(values: list[float], items: list[Any] = items) -> None:
                    for (record, key, _), value in zip(items, values, strict=True):
                        record[key] = value
                        if key == "loss" and not math.isfinite(value):
                            self._on_nonfinite_loss(record["step"])

                self._pending.append((stacked, fill))
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        by_device: dict[torch.device, list[int]] = {}
        for index, (values, _) in enumerate(pending):
            by_device.setdefault(values.device, []).append(index)
        for indices in by_device.values():
            # float32 on the device (MPS has no float64); the host side works in float64
            try:
                chunks = [_flat32(pending[i][0]) for i in indices]
                host = torch.cat(chunks).cpu().tolist()  # the one host sync for this device
            except Exception as exc:  # meta tensors, a lost device: never break training
                self.record_error("flush", exc)
                continue
            offset = 0
            for i, chunk in zip(indices, chunks, strict=True):
                size = chunk.numel()
                callback = pending[i][1]
                try:
                    callback(host[offset : offset + size])
                except Exception as exc:  # a bug in babysit must not break training
                    self.record_error("flush", exc)
                offset += size

    def _on_nonfinite_loss(self, step: int) -> None:
        """Sample the next step once the loss is seen non-finite: the layer statistics of a
        diverged model say where the NaN/Inf lives."""
        run = self.trace.run
        if "first_nonfinite_loss_step" not in run:
            run["first_nonfinite_loss_step"] = step
            self.next_sample = min(self.next_sample, self.step + 1)

    # -- failure isolation -----------------------------------------------------------------
    def guard(self, probe: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a hook so that an exception disables ``probe`` instead of breaking training."""

        def guarded(*args: Any, **kwargs: Any) -> Any:
            if probe in self.disabled:
                return None
            try:
                return fn(*args, **kwargs)
            except StopRun:
                raise
            except Exception as exc:
                self.disabled.add(probe)
                self.record_error(probe, exc)
                return None

        return guarded

    def record_error(self, probe: str, exc: BaseException) -> None:
        frames = traceback.format_exception(type(exc), exc, exc.__traceback__)
        self.trace.errors.append(
            {
                "probe": probe,
                "error": f"{type(exc).__name__}: {exc}",
                "step": self.step,
                "traceback": "".join(frames[-6:]),
            }
        )


def eager(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` as ``torch.compile`` sees it: an opaque call that runs eagerly.

    Hooks that Dynamo traces into a compiled model or optimizer step would otherwise bake
    babysit's Python state (the step counter, the trace's lists) into guards, and the user's
    graph would recompile on every step until Dynamo gives up and runs it uncompiled. Outside
    of tracing this costs one ``is_compiling()`` call, not ``disable``'s frame switch.
    ``disable`` itself is built on first use: it imports Dynamo and Inductor (hundreds of
    modules, most of a second), which an eager run never needs."""
    opaque: list[Callable[..., Any]] = []

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if is_compiling():
            if not opaque:
                opaque.append(torch.compiler.disable(fn))
            return opaque[0](*args, **kwargs)
        return fn(*args, **kwargs)

    return call


# torch.compiler.is_compiling is torch >= 2.3; Dynamo folds either to True while tracing
is_compiling: Callable[[], bool] = getattr(torch.compiler, "is_compiling", None) or (
    torch._dynamo.is_compiling
)


def _flat32(values: torch.Tensor) -> torch.Tensor:
    flat = values.reshape(-1)
    return flat if flat.dtype == torch.float32 else flat.to(torch.float32)


_SKIP_PREFIXES: tuple[str, ...] = ()


def user_frame(skip: int = 1) -> tuple[str, int] | None:
    """The innermost frame outside torch and babysit: where the user's code made the call."""
    global _SKIP_PREFIXES
    if not _SKIP_PREFIXES:
        import os

        import babysit

        _SKIP_PREFIXES = (
            os.path.dirname(torch.__file__),
            os.path.dirname(babysit.__file__),
            os.path.dirname(os.__file__),  # the standard library (runpy, contextlib, ...)
        )
    frame = sys._getframe(skip)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_SKIP_PREFIXES) and not filename.startswith("<"):
            return filename, frame.f_lineno
        frame = frame.f_back
    return None
