from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.curves import layer_order, median, update_ratios
from babysit.trace import Trace


class UpdateRatioOff(Check):
    """Each optimizer step moves the weights far more or far less than ~1e-3 of their size.

    ## What it does
    On sampled steps, measures per layer the ratio of the update's norm to the weights' norm,
    ‖Δw‖/‖w‖ (the step's actual change, whatever the optimizer). Takes the median over the
    sampled steps (the first step left out when there are others) for each layer, then the
    median over layers. Fires when that is below `too_low` or above `too_high`, and suggests
    a learning-rate multiplier that brings it to `target`.

    ## Why is this bad?
    The update ratio is the learning rate as the network sees it. Around 1e-3 per step,
    weights change meaningfully over a few thousand steps without jumping. Far below, the
    network barely learns (the loss curve looks flat or linear); far above, each step
    overwrites what was learned and training is unstable or diverges.

    ## Example
    ```python
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-7)   # ratio ≈ 1e-8
    ```

    ## Fix
    Multiply the learning rate by the suggested factor (the update of SGD and Adam scales
    linearly with it):
    ```python
    for group in optimizer.param_groups:
        group["lr"] *= 100
    ```

    ## Thresholds
    * `target` = 1e-3: CS231n's rule of thumb for ‖Δw‖/‖w‖ per step.
    * `too_low` = 1e-5 and `too_high` = 1e-1: 100× away from the target on either side. Clean
      runs on the bundled examples (Adam 1e-3, SGD 0.05 with momentum) measure 2e-4 to 1e-2
      per layer; fine-tuning a transformer with Adam 2e-5 gives about 1e-4–1e-3.
    * `min_layers` = 1: layers with a non-zero weight norm and a measured update.

    ## References
    * CS231n, "Neural Networks Part 3": "ratio of the update magnitudes to the value
      magnitudes ... should be somewhere around 1e-3".
    * Karpathy, "A Recipe for Training Neural Networks" (2019).
    """

    id = "BS405"
    name = "update-ratio-off"
    severity = Severity.WARNING
    summary = "weight updates are far from ~1e-3 of the weights per step"
    requires = ("gradients",)
    implied_by = ("loss-diverging", "symmetric-init", "gradients-not-reset")
    thresholds = {"target": 1e-3, "too_low": 1e-5, "too_high": 1e-1, "min_layers": 1}

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        per_layer = {
            name: median(values) for name, values in update_ratios(trace).items() if values
        }
        per_layer = {n: r for n, r in per_layer.items() if math.isfinite(r) and r > 0}
        if len(per_layer) < thresholds["min_layers"]:
            return
        overall = median(list(per_layer.values()))
        low, high = thresholds["too_low"], thresholds["too_high"]
        if low <= overall <= high:
            return
        multiplier = thresholds["target"] / overall
        direction = "small" if overall < low else "large"
        ordered = layer_order(trace, list(per_layer))
        extreme = (min if overall < low else max)(ordered, key=per_layer.__getitem__)
        lr = _lr(trace)
        suggested = f"lr={lr * multiplier:.2g}" if lr else f"{multiplier:.2g}× the learning rate"
        samples = len([g for g in trace.gradients if g.get("layers")])
        decay = _weight_decay(trace)
        if overall > high and lr and decay and lr * decay >= thresholds["too_high"] / 10:
            # the decay term alone moves the weights: lowering it, not the lr, is the fix
            yield self.finding(
                f"weight updates are too large: the median ‖Δw‖/‖w‖ per step over "
                f"{len(per_layer)} layers is {overall:.2g} (healthy ≈ "
                f"{thresholds['target']:.0e}); weight decay {decay:g} × lr {lr:.2g} alone "
                f"shrinks every weight by {lr * decay:.1%} per step, so the weights decay "
                "toward zero faster than the gradients can grow them.",
                f"Lower the weight decay (1e-4…5e-4 is usual with SGD, 0.01–0.1 with AdamW's "
                f"decoupled decay) instead of weight_decay={decay:g}:\n```python\n"
                f"optimizer = torch.optim.SGD(model.parameters(), lr={lr:.2g}, "
                "weight_decay=5e-4)\n```",
                evidence={
                    "median_update_ratio": overall,
                    "per_layer": {n: per_layer[n] for n in ordered},
                    "lr": lr,
                    "weight_decay": decay,
                    "decay_per_step": lr * decay,
                },
                layer=extreme,
            )
            return
        yield self.finding(
            f"weight updates are too {direction}: the median ‖Δw‖/‖w‖ per step over "
            f"{len(per_layer)} layers is {overall:.2g} (healthy ≈ {thresholds['target']:.0e}; "
            f"{samples} sampled steps); `{extreme}` is at {per_layer[extreme]:.2g}. "
            f"Multiply the learning rate by about {multiplier:.2g}.",
            f"Use {suggested}"
            + (f" instead of lr={lr:.2g}" if lr else "")
            + ":\n```python\nfor group in optimizer.param_groups:\n"
            f"    group['lr'] *= {_round(multiplier)}\n```",
            evidence={
                "median_update_ratio": overall,
                "per_layer": {n: per_layer[n] for n in ordered},
                "lr": lr,
                "suggested_lr_multiplier": multiplier,
            },
            layer=extreme,
        )


def _lr(trace: Trace) -> float | None:
    for record in reversed(trace.steps):
        if isinstance(record.get("lr"), int | float):
            return float(record["lr"])
    return None


def _weight_decay(trace: Trace) -> float | None:
    """The largest weight decay of the primary optimizer's groups (coupled or decoupled)."""
    optimizers = trace.facts.get("optimizers") or []
    groups = optimizers[0].get("param_groups", []) if optimizers else []
    values = [g.get("weight_decay") for g in groups if isinstance(g, dict)]
    values = [float(v) for v in values if isinstance(v, int | float) and v > 0]
    return max(values) if values else None


def _round(value: float) -> str:
    """A pasteable multiplier: one significant digit (100, 0.01, 3)."""
    return f"{float(f'{value:.1g}'):g}"
