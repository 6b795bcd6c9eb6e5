from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.trace import Trace


class GradientsNotReset(Check):
    """Gradients accumulate across optimizer steps because they are never zeroed.

    ## What it does
    On steps 1–3 and then on the sampled steps, looks at one parameter the optimizer
    updates at the moment backward computes its gradient: if `.grad` still holds a value
    then, nothing reset it since the last `optimizer.step()`. Fires when that happens in at
    least `min_fraction` of the checked steps. Deliberate gradient accumulation (several
    `backward()` calls per `step()`, then `zero_grad()`) is not reported: only the first
    backward after a step is checked.

    ## Why is this bad?
    PyTorch adds each new gradient to `.grad`. Without `zero_grad()` every step applies the
    sum of all past gradients: the effective learning rate grows with the step count, the
    direction is dominated by old batches, and the loss plateaus or diverges. It is among the
    most common PyTorch bugs and never raises an error.

    ## Example
    ```python
    for x, y in loader:
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()          # optimizer.zero_grad() never called
    ```

    ## Fix
    ```python
    for x, y in loader:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    ```

    ## Thresholds
    * `min_fraction` = 0.5: the share of checked steps whose gradient was still held. With
      `zero_grad()` the share is exactly 0 (the gradient is `None` or all zeros); without it,
      1. The threshold only guards against a script that forgets the reset on some path.
    * `min_held_ratio` = 1e-6: a held gradient counts when its norm is above this fraction of
      the incoming gradient's norm (rounding residue is not a held gradient).

    ## References
    * PyTorch docs, `torch.optim.Optimizer.zero_grad` and the "Zeroing out gradients" recipe.
    * CS231n and Karpathy, "A Recipe for Training Neural Networks" (2019).
    """

    id = "BS407"
    name = "gradients-not-reset"
    severity = Severity.ERROR
    summary = "gradients accumulate across optimizer steps (zero_grad missing)"
    requires = ("run.grad_reset_checks",)
    thresholds = {"min_fraction": 0.5, "min_held_ratio": 1e-6}

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        checks = [c for c in trace.run.get("grad_reset_checks", []) if "held_norm" in c]
        if not checks:
            return
        held = [
            c
            for c in checks
            if c["held_norm"] > thresholds["min_held_ratio"] * max(c["incoming_norm"], 1e-30)
        ]
        if len(held) / len(checks) < thresholds["min_fraction"]:
            return
        first = held[0]
        yield self.finding(
            f"gradients were not reset between optimizer steps: at {len(held)} of "
            f"{len(checks)} checked steps, `{first['layer']}`'s .grad still held the earlier "
            f"steps' gradient when backward started (at step {first['step']}: norm "
            f"{first['held_norm']:.3g}; the new gradient's norm {first['incoming_norm']:.3g}). "
            "Every step applies the sum of all past gradients.",
            "Zero the gradients once per optimizer step, before backward (for gradient "
            "accumulation, call `step()` and `zero_grad()` together every k batches):"
            "\n```python\noptimizer.zero_grad(set_to_none=True)\nloss.backward()\n"
            "optimizer.step()\n```",
            evidence={
                "steps_checked": len(checks),
                "steps_with_held_gradient": len(held),
                "held_norm": first["held_norm"],
                "incoming_norm": first["incoming_norm"],
                "step": first["step"],
            },
            layer=first["layer"],
        )
