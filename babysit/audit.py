"""``babysit audit``: run an unmodified training script in-process under instrumentation."""

from __future__ import annotations

import contextlib
import os
import runpy
import sys
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from babysit import _autostart
from babysit.errors import BabysitError
from babysit.experiments.protocol import Progress
from babysit.probes.recorder import StopRun
from babysit.session import Session
from babysit.trace import Trace


@dataclass(frozen=True)
class Outcome:
    """How the script ended."""

    status: str  # completed | stopped | exited | crashed | interrupted
    exit_code: int
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.status in ("crashed", "interrupted") or (
            self.status == "exited" and self.exit_code != 0
        )


def audit(
    script: str | Path,
    script_args: Sequence[str] = (),
    *,
    max_steps: int | None = 200,
    max_time: float | None = None,
    max_epochs: int | None = None,
    sample_every: int = 10,
    overhead_budget: float | None = 0.03,
    script_stdout: IO[str] | None = None,
    preflight: bool = True,
    preflight_budget: float = 30.0,
    progress: Progress | None = None,
) -> tuple[Trace, Outcome]:
    """Run ``script`` as ``__main__`` with ``script_args`` and record what it trains; then run
    the pre-flight experiments on the model and batch captured at the first training step."""
    path = Path(script)
    if not path.is_file():
        raise BabysitError(f"no such script: {script} (give the path of a Python file)")
    if path.suffix not in (".py", ""):
        raise BabysitError(f"{script} is not a Python script (.py)")
    trace = Trace(mode="audit", target=str(script))
    add_source(trace, path)  # the static rules (BS9xx) read the script too (before it can chdir)
    trace.run["script_args"] = list(script_args)
    session = Session(
        trace,
        sample_every=sample_every,
        overhead_budget=overhead_budget,
        max_steps=max_steps,
        max_time=max_time,
        max_epochs=max_epochs,
        discover=True,
        capture_batch=True,
    )
    # processes the script starts (Lightning DDP ranks) babysit themselves: see _autostart
    with _autostart.for_children(sample_every, overhead_budget) as child_traces:
        session.start()
        try:
            with _redirect_stdout(script_stdout):
                outcome = run_script(path, script_args)
        finally:
            session.close()
        _autostart.record_children(trace, child_traces)
    trace.run["status"] = outcome.status
    trace.run["script_exit_code"] = outcome.exit_code
    if outcome.error:
        trace.run["error"] = outcome.error
    if not session.models:
        trace.notes.append(
            "no model was seen training: no nn.Module with parameters ran a forward pass in "
            "training mode with gradients enabled"
        )
    elif session.primary is None:
        trace.notes.append("no optimizer step was seen; each training forward counted as a step")
    if preflight:
        run_captured_protocol(session, preflight_budget, progress)
    return trace, outcome


def add_source(trace: Trace, path: Path) -> None:
    """Put the script's text in ``trace.sources`` (path relative to the working directory when
    it is below it); a script that cannot be read or parsed becomes a note."""
    from babysit.lint import read_sources

    shown = path
    with contextlib.suppress(ValueError, OSError):
        shown = path.resolve().relative_to(Path.cwd().resolve())
    collected = read_sources([str(shown)])
    trace.sources.extend(collected.sources)
    trace.notes.extend(f"static rules: {note}" for note in collected.notes)


def run_captured_protocol(
    session: Session, budget: float, progress: Progress | None = None
) -> None:
    """The pre-flight protocol on what the audit captured, or a note saying why it could not
    run (the experiments' checks then report themselves as not run)."""
    from babysit.experiments import Batch, Context, LossSpec, OptimizerSpec, Settings, run_protocol
    from babysit.experiments.batch import loss_from_call

    trace = session.trace
    reason = None
    loss: LossSpec | None = None
    targets = None
    if session.snapshot is None or session.first_batch is None:
        reason = "no training step of a model was captured"
    else:
        call = session.losses.first_call
        if call is not None and call.output_path is not None:
            loss, targets = loss_from_call(call), call.target
            trace.run["preflight_loss"] = "first_loss_call"
        elif session.model_returns_loss:
            loss = LossSpec("model_output")
        elif call is not None:
            reason = (
                "the model's output could not be matched to the loss input (the script "
                "transforms it between the model and the loss)"
            )
        else:
            reason = "no training loss was captured (a loss computed without torch.nn.functional)"
    if reason is not None:
        trace.experiments["protocol"] = {"skipped": reason}
        for name in ("gradients", "overfit", "regularization", "batch_mixing", "verified_fixes"):
            trace.experiments[name] = {"skipped": reason}
        return
    user_model, replica = session.snapshot
    args, kwargs = session.first_batch
    optimizer = None
    if session.primary is not None:
        optimizer = OptimizerSpec.of(session.primary, user_model)
    ctx = Context(
        model=replica,
        batch=Batch(args, kwargs, targets),
        loss=loss,
        trace=trace,
        optimizer=optimizer,
        settings=Settings(budget=budget),
    )
    run_protocol(ctx, progress)


def run_script(path: Path, args: Sequence[str]) -> Outcome:
    """``python path args...`` in this process: argv, sys.path[0] and exit codes as Python does."""
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [str(path), *args]
    sys.path.insert(0, str(path.resolve().parent))
    try:
        runpy.run_path(str(path), run_name="__main__")
        return Outcome("completed", 0)
    except StopRun:
        return Outcome("stopped", 0)
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return Outcome("exited", 0)
        if isinstance(code, int):
            return Outcome("exited", code)
        print(code, file=sys.stderr)  # what Python does with sys.exit("message")
        return Outcome("exited", 1, str(code))
    except KeyboardInterrupt:
        return Outcome("interrupted", 130, "KeyboardInterrupt")
    except BaseException as exc:
        _print_user_traceback(exc)
        return Outcome("crashed", 1, f"{type(exc).__name__}: {exc}")
    finally:
        sys.argv[:] = saved_argv
        sys.path[:] = saved_path
        sys.stdout.flush()


def _print_user_traceback(exc: BaseException) -> None:
    """The script's traceback as Python would print it, without babysit's own frames."""
    tb = exc.__traceback__
    here = os.path.dirname(os.path.abspath(__file__))
    runpy_file = runpy.__file__
    while tb is not None and (
        tb.tb_frame.f_code.co_filename.startswith(here)
        or tb.tb_frame.f_code.co_filename == runpy_file
    ):
        tb = tb.tb_next
    sys.stderr.write("".join(traceback.format_exception(type(exc), exc, tb)))
    sys.stderr.flush()


@contextlib.contextmanager
def _redirect_stdout(stream: IO[str] | None) -> Iterator[None]:
    if stream is None:
        yield
        return
    with contextlib.redirect_stdout(stream):
        yield
