from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.lint import analyses
from babysit.trace import Trace

_LOSS_NAMES = {"cross_entropy": "CrossEntropyLoss / F.cross_entropy", "nll": "NLLLoss / F.nll_loss"}


class SoftmaxBeforeCrossEntropy(Check):
    """Softmax output is fed to a loss that applies log-softmax itself (or to NLLLoss).

    ## What it does
    Reads the script and follows the first argument of every `nn.CrossEntropyLoss` /
    `F.cross_entropy` call back to where it was computed: `F.softmax`, `torch.softmax`,
    `x.softmax(dim)`, an `nn.Softmax` module (alone or last in an `nn.Sequential`), or a model
    of the same file whose `forward` returns one. It also flags probabilities (`softmax`, not
    `log_softmax`) fed to `nn.NLLLoss` / `F.nll_loss`. `log_softmax` followed by `NLLLoss` is
    the correct pair and is never flagged; `log_softmax` followed by `CrossEntropyLoss` is only
    redundant (log-softmax is idempotent) and gets an info note.

    ## Why is this bad?
    `CrossEntropyLoss` expects raw logits and computes `log_softmax` itself. On probabilities
    it computes `log_softmax(softmax(z))`: the loss at init still looks right (about ln C), but
    the outputs live in [0, 1], so the loss can never get near 0 (for 10 classes it is stuck
    above ln(1 + 9/e) ≈ 1.46) and the gradients are damped. `NLLLoss` expects
    log-probabilities; given probabilities it optimizes the wrong objective.

    ## Example
    ```python
    probs = F.softmax(model(x), dim=1)
    loss = F.cross_entropy(probs, y)
    ```

    ## Fix
    Feed the raw logits to the loss; apply softmax only where you need probabilities:
    ```python
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    probs = logits.softmax(dim=1)  # for metrics / inference only
    ```

    ## Thresholds
    None: a static rule.

    ## References
    * PyTorch documentation, `torch.nn.CrossEntropyLoss` ("The input is expected to contain
      the unnormalized logits for each class").
    * A. Karpathy, "A Recipe for Training Neural Networks" (2019).
    """

    id = "BS901"
    name = "softmax-before-cross-entropy"
    severity = Severity.ERROR
    summary = "softmax output fed to CrossEntropyLoss (which applies log-softmax itself)"
    requires = ("sources",)

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        for a in analyses(trace):
            for call in a.calls:
                kind = a.loss_kind(call)
                if kind not in _LOSS_NAMES:
                    continue
                argument = a.argument(call, 0, "input")
                found = a.activation(argument) if argument is not None else None
                if found is None:
                    continue
                activation, producer = found
                finding = self._judge(kind, activation, a.location(producer)[0], argument)
                if finding is None:
                    continue
                severity, message, fix = finding
                yield self.finding(
                    message,
                    fix,
                    evidence={
                        "loss": _LOSS_NAMES[kind],
                        "input": ast.unparse(argument),
                        "activation": activation,
                        "activation_line": a.location(producer)[0],
                    },
                    severity=severity,
                    **a.where(call),
                )

    @staticmethod
    def _judge(
        kind: str, activation: str, line: int, argument: ast.expr
    ) -> tuple[Severity, str, str] | None:
        text = ast.unparse(argument)
        if kind == "cross_entropy" and activation == "softmax":
            return (
                Severity.ERROR,
                f"`{text}` is a softmax output (line {line}) fed to cross-entropy, which applies "
                "log-softmax itself: the loss cannot approach 0 and the gradients are damped.",
                "Pass the raw logits to the loss and keep softmax for metrics or inference:\n\n"
                "```python\nloss = F.cross_entropy(logits, y)\n```",
            )
        if kind == "cross_entropy" and activation == "log_softmax":
            return (
                Severity.INFO,
                f"`{text}` is a log_softmax output (line {line}) fed to cross-entropy, which "
                "applies log-softmax itself: harmless (log-softmax is idempotent) but redundant.",
                "Either drop the log_softmax and pass the logits, or use `F.nll_loss` / "
                "`nn.NLLLoss`, the loss meant for log-probabilities.",
            )
        if kind == "nll" and activation == "softmax":
            return (
                Severity.ERROR,
                f"`{text}` is a softmax output (line {line}) fed to NLLLoss, which expects "
                "log-probabilities: it optimizes the wrong objective.",
                "Use `log_softmax` before NLLLoss, or pass the logits to `F.cross_entropy`:\n\n"
                "```python\nloss = F.nll_loss(F.log_softmax(logits, dim=1), y)\n```",
            )
        return None
