from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.curves import Evaluation, chance_loss, evaluations, where
from babysit.trace import Trace


class TrainValGap(Check):
    """Overfitting (validation loss climbing from its best while training loss falls), or
    underfitting (training loss stuck near chance level).

    ## What it does
    Reads the validation passes (captured no-grad loss calls, or a trainer's / `sitter.log`'s
    `val_loss`) and the training loss since the previous pass.
    *Overfitting*: the validation loss is more than `min_rise` above its best value for the
    last `patience` evaluations (or more) while the training loss kept falling (by more than
    `min_train_drop` since the best evaluation). The finding gives the best epoch/step and
    its validation loss: where early stopping would have stopped.
    *Underfitting*: after at least `min_evals` evaluations the training loss is still above
    `underfit_fraction` of chance level.
    A gap between training and validation loss by itself is normal and is not reported.

    ## Why is this bad?
    Past its best epoch an overfitting model memorizes the training set: every further epoch
    costs compute and makes the model worse on new data. An underfitting model has not
    learned the training data at all: it needs more capacity, less regularization or more
    (or better) optimization, not more data.

    ## Example
    ```python
    model = nn.Sequential(nn.Linear(20, 1024), nn.ReLU(), nn.Linear(1024, 10))  # 256 samples
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)                  # no weight decay
    for epoch in range(200): ...
    ```

    ## Fix
    Overfitting: stop at the best epoch (early stopping), then regularize: weight decay
    1e-4…5e-4, dropout 0.2–0.5, data augmentation, more data, a smaller model.
    ```python
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=5e-4)
    best, bad = float("inf"), 0
    for epoch in range(epochs):
        train_one_epoch(); val = evaluate()
        if val < best: best, bad = val, 0; torch.save(model.state_dict(), "best.pt")
        elif (bad := bad + 1) >= 5: break
    ```
    Underfitting: a bigger model, less regularization, a higher learning rate, more epochs.

    ## Thresholds
    * `patience` = 3 evaluations and `min_rise` = 0.1 (10 % above the best): the validation
      loss of a healthy run fluctuates by a few percent between epochs; smdebug's
      `Overfit` rule uses a relative gap of 0.1, its `Overtraining` rule a patience of 5–10
      (we need the rise as well, so fewer evaluations suffice).
    * `min_train_drop` = 0.02: the training loss must still be falling (2 % since the best
      evaluation): validation rising with training flat is noise or a changing data set.
    * `underfit_fraction` = 0.9 of the chance-level loss after `min_evals` = 3 evaluations:
      a model that learns anything drops well below chance within a few epochs.

    ## References
    * CS231n, "Neural Networks Part 3" (train/val accuracy gap, "there should be a gap, not
      too large").
    * L. Prechelt, "Early Stopping — But When?" (1998).
    * Amazon SageMaker Debugger (smdebug), rules `Overfit` and `Overtraining`.
    """

    id = "BS502"
    name = "train-val-gap"
    severity = Severity.WARNING
    summary = "overfitting (validation loss rising from its best) or underfitting"
    requires = ("evals",)
    implied_by = (
        "validation-at-chance",
        "loss-diverging",
        "train-mode-during-eval",
        "gradients-not-reset",
        "batchnorm-batch-size-one",
        # a model that cannot learn at all underfits: the pre-flight names why
        "symmetric-init",
        "activation-variance-unstable",
        "input-independent-output",
        "cannot-overfit-tiny-batch",
        "batch-mixing",
        "unnormalized-inputs",
    )
    thresholds = {
        "patience": 3,
        "min_rise": 0.1,
        "min_train_drop": 0.02,
        "underfit_fraction": 0.9,
        "min_evals": 3,
    }

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        evals = [e for e in evaluations(trace) if e.val_loss == e.val_loss]  # drop NaN
        if len(evals) < 2:
            return
        overfit = self._overfitting(evals, thresholds)
        if overfit is not None:
            yield overfit
            return
        yield from self._underfitting(trace, evals, thresholds)

    def _overfitting(
        self, evals: list[Evaluation], thresholds: Mapping[str, Any]
    ) -> Finding | None:
        best_index = min(range(len(evals)), key=lambda i: evals[i].val_loss)
        best, last = evals[best_index], evals[-1]
        after = evals[best_index + 1 :]
        limit = best.val_loss * (1 + thresholds["min_rise"])
        # the last `patience` evaluations all sit above the limit
        tail = evals[-int(thresholds["patience"]) :]
        if len(after) < thresholds["patience"] or not all(e.val_loss > limit for e in tail):
            return None
        if best.train_loss is None or last.train_loss is None:
            return None
        if last.train_loss > best.train_loss * (1 - thresholds["min_train_drop"]):
            return None
        rise = last.val_loss / best.val_loss - 1
        gap = (last.val_loss - last.train_loss) / max(abs(last.train_loss), 1e-12)
        return self.finding(
            f"overfitting: the validation loss was best at {where(best)} ({best.val_loss:.4g}) "
            f"and has risen {rise:.0%} since, to {last.val_loss:.4g} at {where(last)}, while the "
            f"training loss kept falling ({best.train_loss:.4g} → {last.train_loss:.4g}); the "
            f"relative gap is now {gap:.3g}. Early stopping would have stopped at {where(best)}.",
            "Stop at the best epoch (keep its checkpoint), then regularize: weight decay "
            "1e-4…5e-4, dropout 0.2–0.5, data augmentation, more data:\n```python\n"
            "optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)\n"
            "if val_loss < best:\n"
            "    best, bad = val_loss, 0\n"
            "    torch.save(model.state_dict(), 'best.pt')\n"
            "elif (bad := bad + 1) >= patience:\n"
            "    break\n```",
            evidence={
                "kind": "overfitting",
                "best_step": best.step,
                "best_epoch": best.epoch,
                "best_val_loss": best.val_loss,
                "last_val_loss": last.val_loss,
                "train_loss_at_best": best.train_loss,
                "last_train_loss": last.train_loss,
                "relative_gap": gap,
                "evaluations": len(evals),
            },
        )

    def _underfitting(
        self, trace: Trace, evals: list[Evaluation], thresholds: Mapping[str, Any]
    ) -> Iterable[Finding]:
        chance = chance_loss(trace)
        trained = [e for e in evals if e.train_loss is not None]
        if chance is None or len(trained) < thresholds["min_evals"]:
            return
        last = trained[-1]
        if last.train_loss is None or last.train_loss < thresholds["underfit_fraction"] * chance:
            return
        yield self.finding(
            f"underfitting: after {len(trained)} evaluations the training loss is still "
            f"{last.train_loss:.4g} at {where(last)}, {last.train_loss / chance:.0%} of chance "
            f"level ({chance:.4g}); validation {last.val_loss:.4g}. The model is not learning "
            "the training data.",
            "Give the model room to fit: more capacity (width/depth), less regularization "
            "(lower weight decay and dropout), a higher learning rate or more epochs; first "
            "check that it can overfit a tiny batch (babysit.check).",
            evidence={
                "kind": "underfitting",
                "train_loss": last.train_loss,
                "val_loss": last.val_loss,
                "chance_loss": chance,
                "evaluations": len(trained),
            },
        )
