from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.lint import analyses
from babysit.lint.loops import backward_calls, optimizer_steps, resets_gradients
from babysit.trace import Trace


class MissingZeroGrad(Check):
    """A training loop calls backward() and optimizer.step() but never zeroes the gradients.

    ## What it does
    Finds loops (`for`/`while`) that call `.backward()` and step an optimizer
    (`optimizer.step()`, `scaler.step(optimizer)`) and reports the innermost one in which
    nothing resets the gradients: no `zero_grad()` on the optimizer or the model, no
    `p.grad = None`, no `p.grad.zero_()` — anywhere in the loop body, before or after the
    backward pass, including in helper functions of the same file that the loop calls.
    Gradient accumulation (`if (i + 1) % k == 0: opt.step(); opt.zero_grad()`) resets them
    and is fine. Lightning modules have no manual loop and are never flagged.

    ## Why is this bad?
    `backward()` adds to `.grad`. Without a reset every step applies the sum of all gradients
    since the start of training: the effective learning rate grows with the step count, the
    updates point in a stale direction and training diverges or stalls, with no error.

    ## Example
    ```python
    optimizer.zero_grad()
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    ```

    ## Fix
    Reset the gradients once per step, inside the loop:
    ```python
    for x, y in loader:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    ```

    ## Thresholds
    None: a static rule.

    ## References
    * PyTorch tutorial "Optimizing Model Parameters" ("gradients by default add up; to
      prevent double-counting, we explicitly zero them at each iteration").
    """

    id = "BS903"
    name = "missing-zero-grad"
    severity = Severity.ERROR
    summary = "a training loop calls backward() and step() but never zeroes the gradients"
    requires = ("sources",)

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        for a in analyses(trace):
            training = {}
            for loop in a.loops:
                steps = optimizer_steps(a, loop)
                backwards = backward_calls(a, loop)
                if steps and backwards:
                    training[loop] = (steps, backwards)
            for loop, (steps, backwards) in training.items():
                inner = [
                    other
                    for other in training
                    if other is not loop and any(up is loop for up in a.ancestors(other))
                ]
                if inner or resets_gradients(a, loop):
                    continue  # the innermost training loop is the one judged
                step, optimizer = steps[0]
                name = ast.unparse(optimizer)
                yield self.finding(
                    f"the loop at line {a.location(loop)[0]} calls `.backward()` (line "
                    f"{a.location(backwards[0])[0]}) and `{ast.unparse(step.func)}()` but never "
                    "zeroes the gradients: every step applies the sum of all gradients so far.",
                    f"Call `{name}.zero_grad(set_to_none=True)` once per step inside the loop "
                    "(before the forward pass or right after the step).",
                    evidence={
                        "optimizer": name,
                        "loop_line": a.location(loop)[0],
                        "backward_line": a.location(backwards[0])[0],
                    },
                    **a.where(step),
                )
