from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.layerstats import signal_chain
from babysit.trace import Trace


class SymmetricInit(Check):
    """All units of a layer start identical, so they get identical gradients and never differ.

    ## What it does
    Looks at consecutive Linear/convolution layers A → B at init. If every unit of A has the
    same incoming weights (identical rows of A's weight, e.g. all zero or a constant) and every
    unit of A feeds B with the same weight (identical columns of B's weight), then A's units
    compute the same value and receive the same gradient: symmetry is never broken.

    ## Why is this bad?
    A layer of identical units is a layer of one unit. "Zero initialization leads to symmetric
    hidden layers and makes your network no better than a linear model." Training runs, the
    loss may even fall a little through the biases, and the model stays near chance.

    ## Example
    ```python
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.weight)
    ```

    ## Fix
    Initialize weights randomly (biases may stay zero); zero-initializing only the output
    layer is fine:
    ```python
    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    nn.init.zeros_(m.bias)
    ```

    ## Thresholds
    `max_spread` = 0: the largest standard deviation across A's rows (per input) and across
    B's columns (per output) must both be exactly zero. Any random init breaks symmetry, so
    there is no gray zone.

    ## References
    * The babysitting checklist (lecture "Deep learning optimization II"): zero
      initialization; "weights must be initialized to be different from one another".
    * I. Goodfellow, Y. Bengio, A. Courville, "Deep Learning", section 8.4 (breaking symmetry).
    """

    id = "BS104"
    name = "symmetric-init"
    severity = Severity.WARNING
    summary = "all units of a layer start identical (zero or constant init)"
    requires = ("layers",)
    thresholds = {"max_spread": 0.0}

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        chain = signal_chain(trace)
        limit = thresholds["max_spread"]
        symmetric = []
        for a, b in itertools.pairwise(chain):
            rows = trace.layers[a.name].get("weight_row_spread")
            cols = trace.layers[b.name].get("weight_col_spread")
            if rows is None or cols is None or a.fan_out < 2:
                continue
            if rows <= limit and cols <= limit:
                symmetric.append((a, b))
        if not symmetric:
            return
        a, b = symmetric[0]
        names = ", ".join(f"`{x.name}`" for x, _ in symmetric[:6])
        yield self.finding(
            f"The {a.fan_out} units of `{a.name}` start identical (weight std "
            f"{a.weight_std or 0:.3g}) and feed `{b.name}` with identical weights: they get "
            f"identical gradients and can never differ. Symmetric layers: {names}.",
            "Initialize the weights randomly (zero biases are fine):\n\n```python\n"
            "def init_weights(m):\n"
            "    if isinstance(m, (nn.Linear, nn.Conv2d)):\n"
            f"        {a.init_call}\n"
            "        nn.init.zeros_(m.bias)\n\n"
            "model.apply(init_weights)\n```",
            evidence={
                "layers": [x.name for x, _ in symmetric],
                "units": a.fan_out,
                "weight_std": a.weight_std,
                "next_layer": b.name,
            },
            layer=a.name,
        )
