from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.curves import chance_loss, evaluations, where
from babysit.trace import Trace


class ValidationAtChance(Check):
    """Training loss goes toward zero while validation stays at chance level: memorization.

    ## What it does
    Compares the last evaluation with the chance-level loss (the loss of the best constant
    prediction, from the training targets). Fires when the training loss fell below
    `train_fraction` of chance while the best validation loss never got below
    `val_fraction` of chance, over at least `min_evals` evaluations.

    ## Why is this bad?
    A model that fits its training set but learns nothing that transfers has memorized it.
    With a reasonable model and data set this almost always means the validation labels do
    not belong to their inputs (shuffled separately, sorted differently, a wrong join), the
    validation inputs are preprocessed differently from training (no normalization, another
    tokenizer), or the training labels are themselves random.

    ## Example
    ```python
    val_x, val_y = val_x[torch.randperm(n)], val_y     # inputs shuffled, labels not
    ```

    ## Fix
    Check that validation samples and labels are aligned and preprocessed like training:
    ```python
    x, y = next(iter(val_loader)); print(y[:10], model(x).argmax(1)[:10])
    ```
    Then verify the same pipeline (transforms, normalization constants) feeds both loaders.

    ## Thresholds
    * `train_fraction` = 0.5: the training loss is below half of chance level — clearly
      learning. (With 10 % label noise the bundled example's training loss bottoms out at
      35 % of chance, so a lower bar would miss noisy data sets.)
    * `val_fraction` = 0.9: the best validation loss is still above 90 % of chance — nothing
      transferred. Clean runs on the bundled examples reach validation losses at 2–40 % of
      chance; the overfitting example's best is 77 %; misaligned validation labels give
      160–200 %.
    * `min_evals` = 2 evaluations.

    ## References
    * C. Zhang et al., "Understanding deep learning requires rethinking generalization"
      (ICLR 2017): networks fit random labels, reaching zero training loss at chance-level
      test accuracy.
    * Karpathy, "A Recipe for Training Neural Networks" (2019): "visualize just before the
      net", check data and labels.
    """

    id = "BS503"
    name = "validation-at-chance"
    severity = Severity.ERROR
    summary = "training loss falls toward 0 while validation stays at chance"
    requires = ("evals",)
    implied_by = ("loss-diverging",)
    thresholds = {"train_fraction": 0.5, "val_fraction": 0.9, "min_evals": 2}

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        evals = [e for e in evaluations(trace) if e.train_loss is not None]
        chance = chance_loss(trace)
        if chance is None or len(evals) < thresholds["min_evals"]:
            return
        last = evals[-1]
        best_val = min(e.val_loss for e in evals)
        if last.train_loss is None or last.train_loss >= thresholds["train_fraction"] * chance:
            return
        if not best_val >= thresholds["val_fraction"] * chance:
            return
        yield self.finding(
            f"the model memorizes: the training loss fell to {last.train_loss:.4g} "
            f"({last.train_loss / chance:.0%} of chance level {chance:.4g}) at {where(last)}, "
            f"while the best validation loss over {len(evals)} evaluations is {best_val:.4g} "
            f"({best_val / chance:.0%} of chance). Validation labels may not match their "
            "inputs, or validation data is preprocessed differently.",
            "Check that validation inputs and labels are aligned and go through the same "
            "preprocessing as training:\n```python\n"
            "x, y = next(iter(val_loader))\nprint(y[:10], model(x).argmax(1)[:10])\n```",
            evidence={
                "train_loss": last.train_loss,
                "best_val_loss": best_val,
                "chance_loss": chance,
                "evaluations": len(evals),
            },
        )
