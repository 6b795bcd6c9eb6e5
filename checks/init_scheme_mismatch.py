from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.layerstats import LayerSignal, signal_chain
from babysit.trace import Trace
from babysit.verified import verified_fix


class InitSchemeMismatch(Check):
    """A layer's weight scale is far from the Kaiming/Xavier value for the nonlinearity after it.

    ## What it does
    For every Linear/convolution layer that feeds a nonlinearity (the output layer is exempt)
    and is not followed by a normalization layer, compares the standard deviation of its
    initial weights with the variance-preserving value: Kaiming, `gain/sqrt(fan_in)`, for
    ReLU-like activations, and Xavier, `gain·sqrt(2/(fan_in+fan_out))`, for tanh and sigmoid.
    Layers off by more than `max_ratio` in either direction are listed with the `nn.init`
    call that fixes each. When the whole network's signal already collapses or explodes,
    `activation-variance-unstable` reports it instead (one finding per problem).

    ## Why is this bad?
    Each mis-scaled layer multiplies the activation variance by the square of the error; a
    few of them make training slow or unstable, and the optimizer spends its first steps
    repairing the initialization.

    ## Example
    ```python
    layer = nn.Linear(256, 256)            # followed by ReLU
    nn.init.normal_(layer.weight, std=0.5)  # Kaiming: sqrt(2/256) = 0.088 -> 5.7x too large
    ```

    ## Fix
    ```python
    nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")   # before ReLU
    nn.init.xavier_normal_(layer.weight, gain=nn.init.calculate_gain("tanh"))  # before tanh
    ```

    ## Thresholds
    `max_ratio` = 8: weight std more than 8× above or below the recommended value. PyTorch's
    default init is 0.41× Kaiming-ReLU and 0.35× Xavier-tanh (silent); `std=0.01` on a
    128-wide layer is 0.08× (fires); in our calibration nets (see
    `activation-variance-unstable`) ratios within 8× trained with Adam and SGD at depth ≤ 3.

    ## References
    * K. He et al., "Delving Deep into Rectifiers", ICCV 2015.
    * X. Glorot, Y. Bengio, "Understanding the difficulty of training deep feedforward neural
      networks", AISTATS 2010.
    * The babysitting checklist (lecture "Deep learning optimization II"): "initialize weights
      based on activation functions, Xavier or Kaiming".
    """

    id = "BS103"
    name = "init-scheme-mismatch"
    severity = Severity.WARNING
    summary = "weight init far from Kaiming/Xavier for the nonlinearity that follows"
    requires = ("layers",)
    implied_by = ("symmetric-init",)
    thresholds = {"max_ratio": 8.0}

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        from babysit.checks.activation_variance_unstable import ActivationVarianceUnstable

        if any(f.severity >= Severity.WARNING for f in ActivationVarianceUnstable().judge(trace)):
            return
        chain = signal_chain(trace)
        normalized = set(trace.facts.get("model", {}).get("normalization_layers") or [])
        limit = thresholds["max_ratio"]
        off: list[tuple[LayerSignal, float]] = []
        for layer in chain[:-1]:
            if not layer.nonlinearity or not layer.weight_std:
                continue
            if _followed_by_normalization(trace, layer, normalized):
                continue
            ratio = layer.weight_std / layer.recommended_std
            if not 1 / limit <= ratio <= limit:
                off.append((layer, ratio))
        if not off:
            return
        first, ratio = off[0]
        lines = "\n".join(
            layer.init_call_for(f'model.get_submodule("{layer.name}").weight')
            + f"  # std {layer.weight_std:.3g} -> {layer.recommended_std:.3g}"
            for layer, _ in off[:8]
        )
        verified, extra = verified_fix(trace, self.name)
        yield self.finding(
            f"{len(off)} layer(s) are initialized far from the variance-preserving scale; "
            f"`{first.name}` has weight std {first.weight_std:.3g}, {_times(ratio)} the "
            f"{_scheme(first)} value {first.recommended_std:.3g} for the "
            f"{first.nonlinearity} after it." + verified,
            "Initialize each layer for the nonlinearity that follows it:\n\n```python\n"
            + lines
            + "\n```",
            evidence=extra
            | {
                layer.name: {
                    "weight_std": layer.weight_std,
                    "recommended_std": layer.recommended_std,
                    "ratio": ratio,
                    "nonlinearity": layer.nonlinearity,
                }
                for layer, ratio in off[:8]
            },
            layer=first.name,
        )


def _followed_by_normalization(trace: Trace, layer: LayerSignal, normalized: set[str]) -> bool:
    later = sorted(
        (info["order"], name)
        for name, info in trace.layers.items()
        if info.get("order") is not None and info["order"] > layer.order
    )
    for _, name in later:
        if name in normalized:
            return True
        if "fan_in" in trace.layers[name] or trace.layers[name].get("activation"):
            return False
    return False


def _scheme(layer: LayerSignal) -> str:
    return "Xavier" if layer.nonlinearity in ("tanh", "sigmoid") else "Kaiming"


def _times(ratio: float) -> str:
    if ratio >= 1:
        return f"{ratio:.1f}× above"
    return f"{1 / ratio:.1f}× below" if ratio > 0 else "infinitely below"
