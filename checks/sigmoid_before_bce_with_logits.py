from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.lint import analyses
from babysit.trace import Trace


class SigmoidBeforeBceWithLogits(Check):
    """Sigmoid output is fed to BCEWithLogitsLoss, which applies the sigmoid itself.

    ## What it does
    Reads the script and follows the first argument of every `nn.BCEWithLogitsLoss` /
    `F.binary_cross_entropy_with_logits` call back to where it was computed: `torch.sigmoid`,
    `F.sigmoid`, `x.sigmoid()`, an `nn.Sigmoid` module (alone or last in an `nn.Sequential`),
    or a model of the same file whose `forward` returns one. A sigmoid followed by plain
    `nn.BCELoss` / `F.binary_cross_entropy` is correct but numerically fragile: it gets an
    info note.

    ## Why is this bad?
    `BCEWithLogitsLoss` computes `sigmoid` itself (with the log-sum-exp trick). On
    probabilities it computes `sigmoid(sigmoid(z))`, which lives in [0.5, 0.73]: the loss
    cannot approach 0, predictions above 0.5 look like class 1 whatever the model says, and
    the gradients shrink. Sigmoid + `BCELoss` takes `log` of values that round to 0 or 1 in
    float32 once |z| > ~17 (BCELoss clamps the log at -100), where the fused loss stays exact.

    ## Example
    ```python
    probs = torch.sigmoid(model(x))
    loss = nn.BCEWithLogitsLoss()(probs, y)
    ```

    ## Fix
    Feed the raw logits to `BCEWithLogitsLoss`; apply the sigmoid only for predictions:
    ```python
    logits = model(x)
    loss = F.binary_cross_entropy_with_logits(logits, y)
    preds = torch.sigmoid(logits) > 0.5
    ```

    ## Thresholds
    None: a static rule.

    ## References
    * PyTorch documentation, `torch.nn.BCEWithLogitsLoss` ("more numerically stable than
      using a plain Sigmoid followed by a BCELoss").
    """

    id = "BS902"
    name = "sigmoid-before-bce-with-logits"
    severity = Severity.ERROR
    summary = "sigmoid output fed to BCEWithLogitsLoss (which applies the sigmoid itself)"
    requires = ("sources",)

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        for a in analyses(trace):
            for call in a.calls:
                kind = a.loss_kind(call)
                if kind not in ("bce", "bce_logits"):
                    continue
                argument = a.argument(call, 0, "input")
                found = a.activation(argument) if argument is not None else None
                if found is None or found[0] != "sigmoid":
                    continue
                text, line = ast.unparse(argument), a.location(found[1])[0]
                evidence = {"input": text, "activation": "sigmoid", "activation_line": line}
                if kind == "bce_logits":
                    yield self.finding(
                        f"`{text}` is a sigmoid output (line {line}) fed to "
                        "BCEWithLogitsLoss, which applies the sigmoid again: the loss cannot "
                        "approach 0 and the gradients shrink.",
                        "Pass the raw logits to the loss and keep the sigmoid for "
                        "predictions:\n\n```python\n"
                        "loss = F.binary_cross_entropy_with_logits(logits, y)\n```",
                        evidence={**evidence, "loss": "BCEWithLogitsLoss"},
                        **a.where(call),
                    )
                else:
                    yield self.finding(
                        f"`{text}` is a sigmoid output (line {line}) fed to BCELoss: correct, "
                        "but the log of saturated probabilities loses precision in float32.",
                        "Drop the sigmoid and use the fused, numerically stable loss:\n\n"
                        "```python\nloss = F.binary_cross_entropy_with_logits(logits, y)\n```",
                        evidence={**evidence, "loss": "BCELoss"},
                        severity=Severity.INFO,
                        **a.where(call),
                    )
