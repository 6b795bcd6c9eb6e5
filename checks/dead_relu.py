from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.layerstats import first_sample
from babysit.trace import Trace


class DeadRelu(Check):
    """Most units of a ReLU layer are never active on a whole batch at init.

    ## What it does
    On the first recorded training forward pass, measures for every ReLU (and LeakyReLU)
    module the fraction of its units (channels of a feature map, features otherwise) that are
    not positive for any sample of the batch, and fires when that fraction is above
    `max_dead_fraction`.

    ## Why is this bad?
    A ReLU unit that is off for every input passes no gradient to the weights feeding it: it
    is dead and usually stays dead. Many dead units at init mean a large negative bias, a
    badly scaled previous layer or badly shifted inputs, and a network much smaller than it
    looks.

    ## Example
    ```python
    nn.init.constant_(layer.bias, -5.0)   # pre-activations mostly negative: ReLU off
    ```

    ## Fix
    Re-center the pre-activations: zero (or slightly positive) biases, Kaiming weights,
    normalized inputs; LeakyReLU keeps a gradient for negative inputs:
    ```python
    nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    nn.init.zeros_(layer.bias)
    ```

    ## Thresholds
    * `max_dead_fraction` = 0.5: smdebug's dead-ReLU rule uses 50 % of units; AutoTrainer and
      DeepDiagnosis use 70 %.
    * `min_samples_per_unit` = 8: with fewer observations per unit a healthy unit (active half
      of the time) is "never active" by chance (probability 0.5⁸ = 0.4 % at 8).

    ## References
    * Amazon SageMaker Debugger (smdebug), rule `DeadRelu`.
    * X. Zhang et al., "AutoTrainer" (ICSE 2021); M. Wardat et al., "DeepDiagnosis" (ICSE 2022).
    """

    id = "BS105"
    name = "dead-relu"
    severity = Severity.WARNING
    summary = "most units of a ReLU layer are never active at init"
    requires = ("layers",)
    implied_by = ("symmetric-init", "input-independent-output")
    thresholds = {"max_dead_fraction": 0.5, "min_samples_per_unit": 8}

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        dead = []
        for name in trace.layer_order():
            info = trace.layers[name]
            sample = first_sample(info)
            if info.get("activation") not in ("relu", "leaky_relu") or not sample:
                continue
            fraction = sample.get("dead_frac")
            if fraction is None:
                continue
            if sample.get("samples_per_unit", 0) < thresholds["min_samples_per_unit"]:
                continue
            if fraction > thresholds["max_dead_fraction"]:
                dead.append((name, fraction))
        if not dead:
            return
        name, fraction = dead[0]
        yield self.finding(
            f"{fraction:.0%} of the units after `{name}` are never active on the batch at init"
            + (
                f" (and {len(dead) - 1} more ReLU layer(s) above the threshold)"
                if len(dead) > 1
                else ""
            )
            + ": they pass no gradient and may never recover.",
            "Re-center the pre-activations: zero biases, Kaiming weights, normalized inputs, or "
            'LeakyReLU:\n\n```python\nnn.init.kaiming_normal_(m.weight, nonlinearity="relu")\n'
            "nn.init.zeros_(m.bias)\n```",
            evidence={
                "dead_fraction_by_layer": dict(dead[:8]),
                "threshold": thresholds["max_dead_fraction"],
            },
            layer=name,
        )
