from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.lint import analyses
from babysit.lint.analysis import Analysis
from babysit.lint.loops import backward_calls, optimizer_steps, resets_gradients
from babysit.lint.scopes import LOOP_NODES
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
    and is fine. A Lightning module's `training_step` runs once per batch, like a loop body:
    with manual optimization (`self.manual_backward(loss)`, `opt.step()`) it is flagged when
    nothing in the module resets the gradients; with automatic optimization the trainer does.

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
            # the innermost training loop is the one judged: skip those holding another
            outer = {id(up) for other in training for up in a.ancestors(other)}
            for loop, (steps, backwards) in training.items():
                if id(loop) in outer or resets_gradients(a, loop):
                    continue
                yield self._report(a, loop, "the loop", steps[0], backwards[0])
            for cls in a.classes.values():
                step_method = a.method(cls, "training_step")
                if step_method is None or not a.is_lightning_module(cls):
                    continue
                steps = optimizer_steps(a, step_method)
                backwards = backward_calls(a, step_method)
                in_loop = steps and any(
                    isinstance(up, LOOP_NODES) for up in a.ancestors(steps[0][0])
                )
                if not steps or not backwards or in_loop or resets_gradients(a, cls):
                    continue  # a loop inside training_step is judged as a loop
                yield self._report(
                    a, step_method, "`training_step` (run once per batch)", steps[0], backwards[0]
                )

    def _report(
        self,
        a: Analysis,
        body: ast.AST,
        what: str,
        step_and_optimizer: tuple[ast.Call, ast.expr],
        backward: ast.Call,
    ) -> Finding:
        step, optimizer = step_and_optimizer
        name = ast.unparse(optimizer)
        backward_name = ast.unparse(backward.func).rsplit(".", 1)[-1]
        return self.finding(
            f"{what} at line {a.location(body)[0]} calls `.{backward_name}()` "
            f"(line {a.location(backward)[0]}) and `{ast.unparse(step.func)}()` but never "
            "zeroes the gradients: every step applies the sum of all gradients so far.",
            f"Call `{name}.zero_grad(set_to_none=True)` once per step "
            + ("inside the loop " if isinstance(body, LOOP_NODES) else "")
            + "(before the forward pass or right after the step).",
            evidence={
                "optimizer": name,
                "loop_line": a.location(body)[0],
                "backward_line": a.location(backward)[0],
            },
            **a.where(step),
        )
