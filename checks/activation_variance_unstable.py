from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.layerstats import LayerSignal, signal_chain
from babysit.trace import Trace
from babysit.verified import verified_fix


class ActivationVarianceUnstable(Check):
    """Activations vanish or explode through the depth of the network at init.

    ## What it does
    On the first recorded training forward pass (at init), follows the Linear/convolution
    layers in call order and measures each layer's output (pre-activation) standard deviation
    relative to the standard deviation of the network's input. It fires when a hidden layer's
    signal has collapsed or blown up by orders of magnitude, names the first layer where the
    signal goes wrong, compares each layer's weight std with the Kaiming/Xavier value for the
    nonlinearity that follows it, and gives the init code to paste.

    Networks with normalization layers (BatchNorm, LayerNorm, GroupNorm, ...) are exempt: they
    rescale activations themselves. The output layer is exempt too: small logits at init are
    what you want (`loss-at-init-not-chance` judges the output scale).

    ## Why is this bad?
    With variance-preserving init (Kaiming for ReLU, Xavier for tanh/sigmoid) each layer keeps
    the activation variance about constant. When every layer shrinks it (weights too small)
    the signal that reaches the deep layers, and the gradient that flows back, is vanishingly
    small: plain SGD stops learning altogether. When every layer grows it, activations and
    gradients explode and training diverges or saturates.

    ## Example
    ```python
    for m in model.modules():            # 8 Linear+ReLU layers
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.01)
    # activation std at layer 8: 1e-9 of the input std
    ```

    ## Fix
    Initialize each layer for the nonlinearity that follows it, or add normalization layers:
    ```python
    def init_weights(m):
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")  # xavier_normal_ for tanh
            nn.init.zeros_(m.bias)

    model.apply(init_weights)
    ```

    ## Thresholds
    Calibrated against trainability, not a textbook ratio. Measured on plain MLPs (width 128,
    10-class synthetic task, 300 steps of Adam 1e-3 and of SGD 0.05 + momentum 0.9):
    * PyTorch's default init shrinks the std to 0.02–0.6 of the input at any depth 2–12 (its
      biases put a floor under it) and trains: silent.
    * `vanishing_ratio` = 1e-4: std=0.01 init measures 3e-4 (2 ReLU layers, trains) but 3e-5
      (3 layers: SGD stays at chance) and 1e-9 (8 layers: Adam reaches 26 % accuracy).
    * `exploding_ratio` = 30: std=0.3 init measures 8 at 3 layers (trains) and 38 at 5 layers
      (SGD diverges to NaN); std=1.0 measures 35+ even at 2 layers (accuracy 0.37–0.88).
    * `info_ratio` = 1e-2: between this and `vanishing_ratio` the shrinkage is reported as
      `info` (trainable with Adam, slow with SGD).
    * `weight_std_tolerance` = 3: a layer's weight std more than 3× off the recommended value
      is named in the evidence (PyTorch's default is 0.41× Kaiming-ReLU: within).

    ## References
    * X. Glorot, Y. Bengio, "Understanding the difficulty of training deep feedforward neural
      networks", AISTATS 2010 (Xavier init).
    * K. He et al., "Delving Deep into Rectifiers", ICCV 2015 (Kaiming init).
    * The babysitting checklist (lecture "Deep learning optimization II"): "initialize weights
      based on activation functions, Xavier or Kaiming".
    * AutoTrainer / DeepDiagnosis: vanishing and exploding activation rules.
    """

    id = "BS102"
    name = "activation-variance-unstable"
    severity = Severity.WARNING
    summary = "activation variance vanishes or explodes through depth at init"
    requires = ("layers",)
    implied_by = ("symmetric-init",)
    thresholds = {
        "vanishing_ratio": 1e-4,
        "exploding_ratio": 30.0,
        "info_ratio": 1e-2,
        "weight_std_tolerance": 3.0,
    }

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        if trace.has_normalization():
            return
        chain = signal_chain(trace)
        hidden = [layer for layer in chain[:-1] if math.isfinite(layer.relative)]
        if not hidden:
            return
        low = min(hidden, key=lambda layer: layer.relative)
        high = max(hidden, key=lambda layer: layer.relative)
        vanish, explode = thresholds["vanishing_ratio"], thresholds["exploding_ratio"]
        if high.relative > explode:
            crossed = next(layer for layer in hidden if layer.relative > explode)
            yield self._finding(trace, chain, hidden, crossed, "explodes", explode, thresholds)
        elif low.relative < vanish:
            crossed = next(layer for layer in hidden if layer.relative < vanish)
            yield self._finding(trace, chain, hidden, crossed, "vanishes", vanish, thresholds)
        elif low.relative < thresholds["info_ratio"]:
            yield self._finding(
                trace,
                chain,
                hidden,
                low,
                "shrinks",
                thresholds["info_ratio"],
                thresholds,
                severity=Severity.INFO,
            )

    def _finding(
        self,
        trace: Trace,
        chain: list[LayerSignal],
        hidden: list[LayerSignal],
        crossed: LayerSignal,
        verb: str,
        limit: float,
        thresholds: Mapping[str, Any],
        severity: Severity | None = None,
    ) -> Finding:
        tolerance = thresholds["weight_std_tolerance"]
        culprit = _first_wrong(hidden, tolerance) or crossed
        depth = hidden.index(crossed) + 1
        mismatched = {
            layer.name: {
                "weight_std": layer.weight_std,
                "recommended": layer.recommended_std,
                "nonlinearity": layer.nonlinearity or "none",
            }
            for layer in hidden
            if _weight_ratio(layer) is not None
            and not 1 / tolerance <= _weight_ratio(layer) <= tolerance
        }
        evidence: dict[str, Any] = {
            "layer": crossed.name,
            "relative_std": crossed.relative,
            "threshold": limit,
            "first_wrong_layer": culprit.name,
            "weight_std": culprit.weight_std,
            "recommended_std": culprit.recommended_std,
            "nonlinearity": culprit.nonlinearity or "none",
            "relative_std_by_layer": {layer.name: layer.relative for layer in chain[:12]},
        }
        if mismatched:
            evidence["mismatched_layers"] = dict(list(mismatched.items())[:8])
        weight_note = ""
        if culprit.weight_std is not None:
            weight_note = (
                f" It goes wrong from `{culprit.name}` on: its weight std is "
                f"{culprit.weight_std:.3g}, against {culprit.recommended_std:.3g} for "
                f"{_init_name(culprit)} with the {culprit.nonlinearity or 'linear'} "
                "that follows it."
            )
        if verb == "shrinks":
            message = (
                f"Activation std shrinks to {crossed.relative:.2g}× the input std by "
                f"`{crossed.name}` (hidden layer {depth}). Trainable with Adam, slow with plain "
                f"SGD.{weight_note}"
            )
        else:
            message = (
                f"Activation std {verb} through depth: at `{crossed.name}` (hidden layer "
                f"{depth}) it is {crossed.relative:.2g}× the input std (threshold "
                f"{limit:g}).{weight_note}"
            )
        verified, extra = verified_fix(trace, self.name)
        evidence.update(extra)
        return self.finding(
            message + verified,
            _fix(hidden),
            evidence=evidence,
            layer=culprit.name,
            severity=severity,
        )


def _weight_ratio(layer: LayerSignal) -> float | None:
    if not layer.weight_std or not layer.recommended_std:
        return None
    return layer.weight_std / layer.recommended_std


def _first_wrong(hidden: list[LayerSignal], tolerance: float) -> LayerSignal | None:
    for layer in hidden:
        ratio = _weight_ratio(layer)
        if ratio is not None and not 1 / tolerance <= ratio <= tolerance:
            return layer
    return None


def _init_name(layer: LayerSignal) -> str:
    return "Xavier" if layer.nonlinearity in ("tanh", "sigmoid") else "Kaiming"


def _fix(hidden: list[LayerSignal]) -> str:
    kinds = Counter(layer.nonlinearity for layer in hidden if layer.nonlinearity)
    representative = (
        next(
            (layer for layer in hidden if layer.nonlinearity == kinds.most_common(1)[0][0]),
            hidden[0],
        )
        if kinds
        else hidden[0]
    )
    types = sorted({layer.type for layer in hidden} | {"Linear"})
    classes = ", ".join(f"nn.{t}" for t in types)
    classes = f"({classes})" if len(types) > 1 else classes
    return (
        "Initialize each layer for the nonlinearity that follows it (Kaiming for "
        "ReLU-like, Xavier for tanh/sigmoid), keep the output layer small, or add "
        "normalization layers (BatchNorm/LayerNorm):\n\n"
        "```python\n"
        "def init_weights(m):\n"
        f"    if isinstance(m, {classes}):\n"
        f"        {representative.init_call}\n"
        "        if m.bias is not None:\n"
        "            nn.init.zeros_(m.bias)\n\n"
        "model.apply(init_weights)\n"
        "```"
    )
