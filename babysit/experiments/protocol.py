"""The pre-flight protocol: every experiment, in order, within one time budget.

Each experiment runs on its own deep copy of the model at init, with the caller's RNG states
restored afterwards, and records its measurements (or why it was skipped) in
``trace.experiments[name]``. Checks judge those records.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from babysit.experiments.context import Context, Skipped
from babysit.experiments.fixes import verified_fixes
from babysit.experiments.gradients import gradient_flow
from babysit.experiments.mixing import batch_mixing
from babysit.experiments.overfit import overfit_regularized, overfit_tiny_batch
from babysit.rng import preserved_rng

Experiment = Callable[[Context], dict[str, Any]]

#: Order matters: later experiments read earlier results (the overfit run's step count).
#: The cheap, fixed-cost experiments run first so that a model that cannot learn (and spends
#: its whole overfit budget) still gets them.
EXPERIMENTS: tuple[tuple[str, str, Experiment], ...] = (
    ("gradients", "one backward pass and one optimizer step", gradient_flow),
    ("batch_mixing", "chart dependencies between samples", batch_mixing),
    ("overfit", "overfit a tiny batch, regularization off", overfit_tiny_batch),
    ("regularization", "the same batch, regularization on", overfit_regularized),
    ("verified_fixes", "apply suggested fixes to a copy and measure again", verified_fixes),
)

Progress = Callable[[str, int, int], None]


def run_protocol(ctx: Context, progress: Progress | None = None) -> None:
    experiments = ctx.trace.experiments
    total = len(EXPERIMENTS)
    for index, (name, description, experiment) in enumerate(EXPERIMENTS):
        if progress:
            progress(description, index, total)
        started = time.monotonic()
        with preserved_rng():
            try:
                ctx.require_time()
                result = experiment(ctx)
            except Skipped as reason:
                result = {"skipped": str(reason)}
            except Exception as exc:  # the user's model may fail on a copy; say so, go on
                result = {"skipped": f"the experiment failed: {type(exc).__name__}: {exc}"}
        result["seconds"] = round(time.monotonic() - started, 3)
        experiments[name] = result
    experiments["protocol"] = {
        "budget": ctx.settings.budget,
        "seconds": round(time.monotonic() - ctx.started, 3),
        "tiny_batch": ctx.settings.tiny_batch,
        "overfit_steps": ctx.settings.overfit_steps,
        "upcast_to_float32": ctx.upcast,
    }
    if progress:
        progress("done", total, total)
