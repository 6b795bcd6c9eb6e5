from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from babysit.chance import Chance, chance_level, per_example
from babysit.check import Check, Finding, Severity
from babysit.layerstats import signal_chain
from babysit.trace import Trace


class LossAtInitNotChance(Check):
    """The first training loss is far from the loss of a model that knows nothing.

    ## What it does
    Compares the loss of the first training step (or of the pre-flight forward pass) with the
    chance-level loss derived from the loss function and the targets:

    * cross-entropy / NLL with C classes: ln C for a uniform prediction; the entropy of the
      label prior for the best constant prediction (they coincide for balanced classes);
    * binary cross-entropy (with or without logits): ln 2 per output; the prior entropy per
      output;
    * MSE: E[y²], the loss of predicting zero; Var(y), the loss of the best constant.

    It fires when the initial loss is far *above* the uniform-prediction loss (the model is
    confidently wrong before it has learned anything), and notes, at `info` level, when it is
    far *below* the best constant prediction (the model already knows the answer: pretrained
    weights, which is fine, or labels leaking into the inputs, which is not).

    ## Why is this bad?
    A freshly initialized classifier should be maximally unsure: its loss is ln C (2.303 for
    10 classes). A much higher loss means the logits are large at init, so the first hundreds
    of steps are spent shrinking them instead of learning (the "hockey stick" loss curve),
    and saturated softmax outputs give poor gradients. Typical causes: the final layer is
    initialized too large, the inputs are not normalized, the final bias does not match the
    class prior, or a softmax was applied before a loss that expects logits.

    ## Example
    ```python
    head = nn.Linear(128, 10)
    nn.init.normal_(head.weight, std=1.0)   # logits with std ~10 at init
    # first loss: 24.7 instead of ln(10) = 2.30
    ```

    ## Fix
    Initialize the last layer small so the first predictions are uniform, set its bias to
    the log class prior when classes are imbalanced, and normalize the inputs:
    ```python
    nn.init.normal_(model.head.weight, std=0.01)
    nn.init.zeros_(model.head.bias)          # or torch.log(class_prior) if imbalanced
    ```

    ## Thresholds
    * `ratio_above` = 1.5 and `margin_above` = 0.3 (nats): fire when the initial loss exceeds
      1.5 × the uniform-prediction loss *and* exceeds it by 0.3. Measured on MLPs with PyTorch's
      default init (2–12 ReLU layers, 10 classes): 2.28–2.31, i.e. ratio 0.99–1.01; Kaiming init
      on the output layer too: 3.1–5.8 (ratio 1.3–2.5); a final layer with std 1: 24+.
    * `mse_ratio_above` = 2.0: for MSE, fire when the loss exceeds 2 × E[y²] (a default-init
      regressor on standardized targets measures 1.1–1.4 × E[y²]).
    * `ratio_below` = 0.5: `info` when the initial loss is below half the best constant
      prediction's loss.
    * A non-finite initial loss is always an `error`.

    ## References
    * A. Karpathy, "A Recipe for Training Neural Networks" (2019): "verify loss @ init",
      "init well".
    * CS231n, "Neural Networks Part 3": look for the correct loss at chance performance.
    * The babysitting checklist (lecture "Deep learning optimization II"): "check that in the
      first round you get loss that corresponds to random guess".
    """

    id = "BS101"
    name = "loss-at-init-not-chance"
    severity = Severity.WARNING
    summary = "the first training loss is far from the chance-level loss"
    requires = ("losses",)
    implied_by = ("unnormalized-inputs",)
    thresholds = {
        "ratio_above": 1.5,
        "margin_above": 0.3,
        "mse_ratio_above": 2.0,
        "ratio_below": 0.5,
    }

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        events = trace.training_losses()
        if not events:
            return
        first = events[0]
        initial = per_example(first)
        if initial is None:
            return
        where = {"file": first.get("file"), "line": first.get("line")}
        if not math.isfinite(initial):
            yield self.finding(
                f"The first training loss is {initial}: the forward pass already produces "
                "non-finite values before any update.",
                "Look for a log of zero, a division by zero or an overflow in the model or the "
                "loss; check the inputs for NaN/Inf and that the model runs in float32.",
                evidence={"initial_loss": initial, "loss_kind": first.get("kind")},
                severity=Severity.ERROR,
                **where,
            )
            return
        chance = chance_level(events)
        if chance is None:
            return
        evidence: dict[str, Any] = {
            "initial_loss": initial,
            "chance_loss": chance.uniform,
            "prior_loss": chance.prior,
            "loss_kind": chance.kind,
            "step": first.get("step", 0),
        }
        if chance.num_classes:
            evidence["num_classes"] = chance.num_classes
        if first.get("prediction_std") is not None:
            evidence["prediction_std"] = first["prediction_std"]

        if chance.kind == "mse_loss":
            too_high = initial > thresholds["mse_ratio_above"] * chance.uniform
        else:
            too_high = (
                initial > thresholds["ratio_above"] * chance.uniform
                and initial - chance.uniform > thresholds["margin_above"]
            )
        if too_high:
            ratio = initial / chance.uniform if chance.uniform > 0 else math.inf
            evidence["ratio"] = ratio
            yield self.finding(
                f"The first training loss is {initial:.4g}, {ratio:.1f}× the chance-level loss "
                f"{chance.description}: before learning anything the model is confidently "
                "wrong, and the first steps will be spent undoing its initialization.",
                _fix_too_high(trace, chance, first),
                evidence=evidence,
                **where,
            )
        elif chance.prior > 0 and initial < thresholds["ratio_below"] * chance.prior:
            yield self.finding(
                f"The first training loss is {initial:.4g}, below half the loss of the best "
                f"constant prediction ({chance.prior:.4g}): the model already predicts the "
                "targets before training.",
                "Expected when fine-tuning pretrained weights. Otherwise check that the labels "
                "do not leak into the inputs (a target column left in the features, an index "
                "that encodes the class) and that the loss is not evaluated on training "
                "targets by mistake.",
                evidence=evidence,
                severity=Severity.INFO,
                **where,
            )


def _fix_too_high(trace: Trace, chance: Chance, first: dict[str, Any]) -> str:
    """Rank the likely causes by what the rest of the trace saw."""
    causes: list[str] = []
    inputs = [i for i in trace.inputs if i.get("floating") and i.get("std") is not None]
    if inputs and (inputs[0]["std"] > 10 or abs(inputs[0].get("mean", 0.0)) > 10):
        causes.append(
            f"The inputs are not normalized (std {inputs[0]['std']:.3g}, mean "
            f"{inputs[0]['mean']:.3g}), which scales every logit; see `unnormalized-inputs`."
        )
    chain = signal_chain(trace)
    head = chain[-1] if chain else None
    if head is not None:
        causes.append(
            f"The last layer `{head.name}` is initialized too large (weight std "
            f"{(head.weight_std or float('nan')):.3g}; output std {head.std:.3g}). "
            "Initialize it small so the first predictions are close to uniform."
        )
    else:
        causes.append("The last layer is initialized too large.")
    if chance.class_prior and chance.prior < chance.uniform - 0.1:
        causes.append(
            "The classes are imbalanced: set the final bias to the log class prior "
            "(`head.bias.data = torch.log(class_prior)`)."
        )
    if chance.kind == "nll_loss":
        causes.append("`NLLLoss` expects log-probabilities: apply `log_softmax`, not `softmax`.")
    if chance.kind == "mse_loss":
        causes.append("Standardize the regression targets or scale down the output layer.")
    head_name = head.name if head is not None else "head"
    ranked = "\n".join(f"{i}. {c}" for i, c in enumerate(causes, 1))
    return (
        f"Likely causes, most likely first:\n\n{ranked}\n\n"
        "```python\n"
        f'last = model.get_submodule("{head_name}")\n'
        "nn.init.normal_(last.weight, std=0.01)\n"
        "nn.init.zeros_(last.bias)\n"
        "```"
    )
