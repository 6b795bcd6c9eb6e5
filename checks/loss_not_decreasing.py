from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.curves import adversarial, chance_loss, training_curve
from babysit.trace import Trace


class LossNotDecreasing(Check):
    """The training loss did not meaningfully decrease over the run.

    ## What it does
    Compares the mean training loss of the first `window_fraction` of the recorded steps
    (at least `min_window` steps) with the mean of the last one. Fires when the run has at
    least `min_steps` steps and the loss fell by less than `min_decrease` of its start.
    Runs whose first window is already well below chance level (below `converged_fraction`
    of it: a fine-tuned or resumed model that fits its data, or one that learned within the
    first window) are not reported, and neither are adversarial runs (a GAN: two
    optimizers, each over its own model, whose losses pull against each other).

    ## Why is this bad?
    A network that trains correctly reduces its loss quickly at first: on every clean example
    the loss falls by 10–60 % within the first hundred steps. A flat loss means no learning:
    a learning rate too small to move the weights, gradients that do not reach the
    parameters (detached graph, frozen layers, an optimizer built over the wrong
    parameters), labels unrelated to the inputs, or a loss that does not depend on the
    model. Hours of compute then produce nothing.

    ## Example
    ```python
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-7)   # weights barely move
    ```

    ## Fix
    Check the learning rate first (Adam 3e-4 / SGD 0.01–0.1 are the usual starting points;
    an lr range test finds the largest stable one), then that every parameter receives a
    gradient and is in the optimizer:
    ```python
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    ```

    ## Thresholds
    * `min_decrease` = 0.01: less than a 1 % decrease between the first and the last window.
      Clean examples decrease 10–60 % within 100 steps; a learning rate 10⁴× too small
      decreases < 0.1 %.
    * `window_fraction` = 0.1 and `min_window` = 10: the loss of one mini-batch is noisy;
      means over 10 % of the run (at least 10 steps) average that out.
    * `min_steps` = 50: shorter runs are too short to call a plateau (smdebug's
      `LossNotDecreasing` uses a window of 50 steps).
    * `converged_fraction` = 0.5: a freshly initialized network starts at chance level (see
      `loss-at-init-not-chance`); a first window below half of it was trained before (a
      model fine-tuned from a checkpoint that fits its data, whose loss may sit at the
      data's noise floor from the first step: 17 % of chance on a 10-class task with label
      noise) or has already learned within the window.

    ## References
    * Amazon SageMaker Debugger (smdebug), rule `LossNotDecreasing`.
    * CS231n, "Neural Networks Part 3" (babysitting the learning process: loss curves).
    """

    id = "BS404"
    name = "loss-not-decreasing"
    severity = Severity.WARNING
    summary = "the training loss did not meaningfully decrease"
    requires = ("steps",)
    implied_by = (
        "loss-diverging",
        "update-ratio-off",
        "gradients-not-reset",
        "symmetric-init",
        "input-independent-output",
        "parameters-without-gradient",
        "cannot-overfit-tiny-batch",
        "activation-variance-unstable",
    )
    thresholds = {
        "min_decrease": 0.01,
        "window_fraction": 0.1,
        "min_window": 10,
        "min_steps": 50,
        "converged_fraction": 0.5,
    }

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        curve = [(s, v) for s, v in training_curve(trace) if math.isfinite(v)]
        if len(curve) < thresholds["min_steps"] or adversarial(trace):
            return
        size = max(int(thresholds["min_window"]), int(len(curve) * thresholds["window_fraction"]))
        first = statistics.fmean(v for _, v in curve[:size])
        last = statistics.fmean(v for _, v in curve[-size:])
        chance = chance_loss(trace)
        if chance and first < thresholds["converged_fraction"] * chance:
            return
        if first <= 0 or (first - last) / abs(first) >= thresholds["min_decrease"]:
            return
        change = (last - first) / abs(first)
        at_chance = chance is not None and abs(first - chance) <= 0.1 * chance
        yield self.finding(
            f"the training loss did not decrease over {len(curve)} steps: mean {first:.4g} over "
            f"the first {size} steps, {last:.4g} over the last {size} ({change:+.2%})"
            + (f", at chance level ({chance:.4g})" if at_chance else "")
            + ".",
            "Raise the learning rate (try 10×, or Adam at 3e-4), and check that the optimizer "
            "holds the model's parameters and that they receive gradients:"
            "\n```python\noptimizer = torch.optim.Adam(model.parameters(), lr=3e-4)\n```",
            evidence={
                "steps": len(curve),
                "first_window_mean": first,
                "last_window_mean": last,
                "relative_change": change,
                "chance_loss": chance,
            },
        )
