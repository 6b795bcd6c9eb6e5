from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.layerstats import first_sample
from babysit.trace import Trace


class SaturatedActivation(Check):
    """Most tanh/sigmoid units sit in their flat tails at init.

    ## What it does
    On the first recorded training forward pass, measures for every Tanh and Sigmoid module
    the fraction of its inputs (pre-activations) with |x| ≥ 5, and fires when that fraction is
    above `max_saturated_fraction`.

    ## Why is this bad?
    At |x| ≥ 5 the derivative of tanh is below 2e-4 and that of the sigmoid below 7e-3: the
    unit passes almost no gradient. A saturated layer at init means its weights are far too
    large for the nonlinearity (Xavier init exists for exactly this) or its inputs are not
    normalized, and training crawls.

    ## Example
    ```python
    layer = nn.Linear(128, 128)
    nn.init.normal_(layer.weight, std=1.0)   # followed by nn.Tanh(): pre-activations ~ N(0, 128)
    ```

    ## Fix
    ```python
    nn.init.xavier_normal_(layer.weight, gain=nn.init.calculate_gain("tanh"))
    ```
    and normalize the inputs.

    ## Thresholds
    * `saturation_level` = 5 (|pre-activation|), `max_saturated_fraction` = 0.5: the
      DeepDiagnosis saturation rule (|x| ≥ 5 in more than 50 % of units). The level is fixed
      by the probe; the fraction can be overridden.

    ## References
    * M. Wardat et al., "DeepDiagnosis" (ICSE 2022), saturated activation symptom.
    * X. Glorot, Y. Bengio, AISTATS 2010: saturation of sigmoid/tanh units with bad init.
    """

    id = "BS106"
    name = "saturated-activation"
    severity = Severity.WARNING
    summary = "most tanh/sigmoid units are saturated at init"
    requires = ("layers",)
    thresholds = {"max_saturated_fraction": 0.5}

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        saturated = []
        for name in trace.layer_order():
            info = trace.layers[name]
            sample = first_sample(info)
            fraction = sample.get("saturated_frac") if sample else None
            if fraction is not None and fraction > thresholds["max_saturated_fraction"]:
                saturated.append((name, info.get("activation"), fraction))
        if not saturated:
            return
        name, kind, fraction = saturated[0]
        yield self.finding(
            f"{fraction:.0%} of the inputs to `{name}` ({kind}) have |x| ≥ 5 at init, where its "
            "gradient is almost zero"
            + (f"; {len(saturated) - 1} more layer(s) too" if len(saturated) > 1 else "")
            + ".",
            "Scale the weights before the nonlinearity with Xavier init and normalize the "
            "inputs:\n\n```python\nnn.init.xavier_normal_(m.weight, "
            f'gain=nn.init.calculate_gain("{kind}"))\n```',
            evidence={
                "saturated_fraction_by_layer": {n: f for n, _, f in saturated[:8]},
                "threshold": thresholds["max_saturated_fraction"],
            },
            layer=name,
        )
