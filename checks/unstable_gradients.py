from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.curves import layer_order, median
from babysit.trace import Trace


class UnstableGradients(Check):
    """Gradients vanish or explode across the layers of the network.

    ## What it does
    On the early sampled steps (the first `early_fraction` of the run, while the model still
    has much to learn), reads each weight layer's mean absolute gradient. Fires when the
    median over those steps is below `vanishing_abs_mean` in some layer, or when the ratio of
    the first layer's to the last layer's mean |g| is below `vanishing_ratio` (the early
    layers get almost nothing) or above `exploding_ratio` (they get far more than the last).

    ## Why is this bad?
    Backpropagation multiplies by each layer's Jacobian. With saturated nonlinearities or
    badly scaled weights the product shrinks or grows geometrically with depth: the first
    layers of a vanishing network stop learning, those of an exploding one take huge steps
    and destabilize training. The loss may still go down a little, driven by the last layers.

    ## Example
    ```python
    model = nn.Sequential(*[nn.Sequential(nn.Linear(256, 256), nn.Sigmoid()) for _ in range(20)])
    ```

    ## Fix
    Initialize for the nonlinearity (Kaiming for ReLU, Xavier for tanh/sigmoid), use ReLU-family
    activations, add normalization layers or residual connections, and clip gradients:
    ```python
    nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    ```

    ## Thresholds
    * `vanishing_abs_mean` = 1e-7: smdebug's and DeepDiagnosis' vanishing-gradient rule.
    * `vanishing_ratio` = 1e-3 and `exploding_ratio` = 70: AutoTrainer's first/last layer
      gradient ratios. Clean examples measure 0.1–10 (MLPs) and up to ~20 (small CNNs, whose
      first convolution sums gradients over every pixel).
    * `early_fraction` = 0.3: late in training a well-fit model has small gradients
      everywhere; only the first 30 % of the run (at least the first sampled step) is judged.

    ## References
    * Amazon SageMaker Debugger (smdebug), rule `VanishingGradient`.
    * X. Zhang et al., "AutoTrainer" (ICSE 2021); M. Wardat et al., "DeepDiagnosis" (ICSE 2022).
    * X. Glorot and Y. Bengio (2010), "Understanding the difficulty of training deep feedforward
      neural networks".
    """

    id = "BS406"
    name = "unstable-gradients"
    severity = Severity.WARNING
    summary = "gradients vanish or explode across layers"
    requires = ("gradients",)
    implied_by = (
        "symmetric-init",
        "activation-variance-unstable",
        "saturated-activation",
        "loss-diverging",
        "gradients-not-reset",
        "parameters-without-gradient",
    )
    thresholds = {
        "vanishing_abs_mean": 1e-7,
        "vanishing_ratio": 1e-3,
        "exploding_ratio": 70.0,
        "early_fraction": 0.3,
    }

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        samples = [g for g in trace.gradients if g.get("layers")]
        if not samples:
            return
        last_step = max(int(trace.run.get("steps") or 0), samples[-1]["step"])
        early = [g for g in samples if g["step"] <= thresholds["early_fraction"] * last_step]
        early = early or samples[:1]
        per_layer: dict[str, list[float]] = {}
        for sample in early:
            for name, layer in sample["layers"].items():
                value = layer.get("grad_abs_mean")
                if isinstance(value, int | float) and math.isfinite(value):
                    per_layer.setdefault(name, []).append(value)
        weights = _weight_layers(trace, per_layer)
        if len(weights) < 2:
            return
        magnitude = {name: median(per_layer[name]) for name in weights}
        ordered = layer_order(trace, weights)
        first, last = ordered[0], ordered[-1]
        tiny = [n for n in ordered if magnitude[n] < thresholds["vanishing_abs_mean"]]
        ratio = magnitude[first] / magnitude[last] if magnitude[last] > 0 else math.inf
        evidence = {
            "mean_abs_gradient": {n: magnitude[n] for n in ordered},
            "first_last_ratio": ratio,
            "steps": [g["step"] for g in early],
        }
        fix = (
            "Initialize for the nonlinearity and keep the signal scaled through depth; add "
            "BatchNorm/LayerNorm or residual connections; clip gradients:\n```python\n"
            "nn.init.kaiming_normal_(layer.weight, nonlinearity='relu')  # Xavier for tanh\n"
            "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n```"
        )
        if tiny or ratio < thresholds["vanishing_ratio"]:
            names = tiny or [first]
            yield self.finding(
                f"gradients vanish: mean |g| is {magnitude[names[0]]:.2g} in `{names[0]}`"
                + (
                    f" ({len(tiny)} layers below {thresholds['vanishing_abs_mean']:.0e})"
                    if tiny
                    else ""
                )
                + f"; first/last layer ratio {ratio:.2g} (`{first}` vs `{last}`), "
                f"over the first {len(early)} sampled step(s).",
                fix,
                evidence=evidence,
                layer=names[0],
            )
        elif ratio > thresholds["exploding_ratio"]:
            yield self.finding(
                f"gradients explode toward the input: mean |g| of `{first}` is {ratio:.3g}× that "
                f"of `{last}` ({magnitude[first]:.2g} vs {magnitude[last]:.2g}) over the first "
                f"{len(early)} sampled step(s).",
                fix,
                evidence=evidence,
                layer=first,
            )


def _weight_layers(trace: Trace, per_layer: dict[str, list[float]]) -> list[str]:
    """Layers with a weight matrix or kernel (Linear, conv, embedding); norms and biases-only
    modules have gradients of another scale."""
    kinds = {}
    for name, info in trace.layers.items():
        kinds[name] = str(info.get("type", ""))
    weighted = ("Linear", "Conv", "Embedding", "Bilinear", "LSTM", "GRU", "RNN")
    names = [n for n in per_layer if per_layer[n]]
    known = [n for n in names if any(k in kinds.get(n, "") for k in weighted)]
    return known if len(known) >= 2 else [n for n in names if n in kinds and "Norm" not in kinds[n]]
