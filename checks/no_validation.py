from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.curves import adversarial
from babysit.trace import Trace


class NoValidation(Check):
    """Training ran for several epochs and no validation pass was seen.

    ## What it does
    Counts the training epochs (iterations of the training DataLoader, or a trainer's
    epochs) and the validation passes: loss calls made without gradients or with the model
    in eval mode, a trainer's validation loss, a `val_loss` logged with `sitter.log`, or
    forwards of the model without gradients or in eval mode (a validation loss computed by
    hand, such as `(model(x) - y).pow(2).mean()`, is no captured loss call).
    Fires after `min_epochs` epochs without any. Runs that train two models against each
    other (a GAN: two optimizers, each over its own model, stepping side by side) are not
    reported: they have no held-out loss to watch.

    ## Why is this bad?
    Without a held-out loss there is no way to tell over- from underfitting, to pick the
    best epoch or to notice that the model stopped improving: the run ends with whatever
    the last epoch produced.

    ## Example
    ```python
    for epoch in range(20):
        for x, y in train_loader: ...     # never evaluated on held-out data
    ```

    ## Fix
    Hold out a validation split and evaluate after every epoch, in eval mode, without
    gradients:
    ```python
    model.eval()
    with torch.no_grad():
        val_loss = sum(loss_fn(model(x), y).item() for x, y in val_loader) / len(val_loader)
    model.train()
    ```
    (If you validate with gradients enabled and in training mode, babysit cannot tell it
    from training: use `model.eval()` and `torch.no_grad()`, or `sitter.log(val_loss=...)`.)

    ## Thresholds
    * `min_epochs` = 3: one or two epochs may be a deliberate smoke test; from the third on,
      a run without validation is flying blind.

    ## References
    * CS231n, "Neural Networks Part 3" (monitor train/val accuracy).
    * Google Deep Learning Tuning Playbook ("evaluate periodically").
    """

    id = "BS504"
    name = "no-validation"
    severity = Severity.WARNING
    summary = "several epochs trained without any validation pass"
    requires = ("epochs",)
    thresholds = {"min_epochs": 3}

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        epochs = len(trace.epochs)
        if epochs < thresholds["min_epochs"] or trace.evals or trace.run.get("eval_forwards"):
            return
        if adversarial(trace):
            return
        steps = trace.run.get("steps")
        yield self.finding(
            f"{epochs} training epochs ({steps} steps) ran without any validation pass: the "
            "model never ran without gradients or in eval mode, and no validation loss was "
            "logged.",
            "Evaluate on held-out data after every epoch:\n```python\n"
            "model.eval()\nwith torch.no_grad():\n"
            "    val_loss = sum(loss_fn(model(x), y).item() for x, y in val_loader)\n"
            "model.train()\n```",
            evidence={"epochs": epochs, "steps": steps},
        )
