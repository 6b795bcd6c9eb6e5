from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.layerstats import signal_chain
from babysit.trace import Trace


class CannotOverfitTinyBatch(Check):
    """The model cannot drive the loss on a handful of samples to ~0.

    ## What it does
    Takes the first few samples (8 by default) of the captured batch, switches regularization
    off (dropout p → 0, weight decay → 0; BatchNorm stays in training mode), and trains a copy
    of the model with Adam for a bounded number of steps. The loss must fall to ~0 and, for
    classification, every sample must be classified correctly. When it does not, the finding
    says how far it got and ranks the likely causes by what the other experiments saw.

    ## Why is this bad?
    Any network with enough parameters can memorize 8 samples in a few dozen steps. If it
    cannot, no amount of data or training time will help: something between the inputs, the
    model, the targets and the loss is broken (a detached graph, a softmax before a loss that
    expects logits, misaligned or out-of-range targets, a model that ignores its input).

    ## Example
    ```python
    model = nn.Sequential(nn.Linear(20, 128), nn.ReLU(), nn.Linear(128, 10), nn.Softmax(dim=1))
    loss = nn.CrossEntropyLoss()(model(x), y)   # CE of probabilities: bounded above zero
    ```

    ## Fix
    Work down the ranked causes in the finding. The classic ones:
    ```python
    # CrossEntropyLoss applies log_softmax itself: return raw logits
    model = nn.Sequential(nn.Linear(20, 128), nn.ReLU(), nn.Linear(128, 10))
    ```

    ## Thresholds
    * `loss_ratio` = 0.05: the best loss must fall below 5 % of the initial loss (0.115 for
      10 balanced classes). Measured with Adam at lr 3e-3 on 8 samples: 11–22 steps for MLPs of
      depth 3–8 (ReLU and tanh), 71 for a small BatchNorm CNN. A softmax before
      `CrossEntropyLoss` cannot go below log(1 + (C−1)/e), 63 % of the start for C = 10.
    * `min_accuracy` = 1.0: every sample of the tiny batch classified correctly; once the loss
      is below `loss_ratio`, `min_accuracy_when_low` = 0.9 is enough: a model whose loss fell
      to 5 % of its start is learning, and token-level tasks (LSTM/GRU language models, a few
      hundred targets per batch) measured 1.7–2.9 % of the start at 97–99 % token accuracy.
    * With label smoothing ε over C classes the loss cannot go below the entropy of the
      smoothed targets, H = −(1−ε+ε/C)·ln(1−ε+ε/C) − (C−1)·(ε/C)·ln(ε/C) (0.50 for ε = 0.1,
      C = 10); the ratio is taken above that floor.
    * A run that ends above `loss_ratio` with 100 % accuracy while its loss is still falling
      (no plateau: at least 1 % better over the last 40 steps) is a slow learner, reported at
      `info` level only; an `error` needs a plateau, a divergence or wrong predictions.
    * The experiment's step budget, 150 Adam steps at lr 3e-3 (retried at 3e-4 when the loss
      diverges), is twice the slowest clean case measured.

    ## References
    * The babysitting checklist (lecture "Deep learning optimization II"): "turn off
      regularization, you should predictably overfit and get a loss of 0".
    * A. Karpathy, "A Recipe for Training Neural Networks" (2019): "overfit one batch".
    * CS231n, "Neural Networks Part 3": overfit a tiny subset of data.
    """

    id = "BS401"
    name = "cannot-overfit-tiny-batch"
    severity = Severity.ERROR
    summary = "a tiny batch cannot be overfit to ~0 with regularization off"
    requires = ("experiments.overfit",)
    implied_by = (
        "input-independent-output",
        "symmetric-init",
        "activation-variance-unstable",
        "targets-out-of-range",
        "parameters-without-gradient",
    )
    thresholds = {"loss_ratio": 0.05, "min_accuracy": 1.0, "min_accuracy_when_low": 0.9}

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        run = trace.experiments["overfit"]
        initial, best = run.get("initial_loss"), run.get("best_loss")
        if initial is None or best is None:
            return
        accuracy = run.get("accuracy")
        floor = _smoothing_floor(trace)
        low_enough = best - floor <= thresholds["loss_ratio"] * (initial - floor)
        accurate = accuracy is None or accuracy >= thresholds["min_accuracy"]
        if run.get("reached") or (low_enough and accurate):
            return
        if low_enough and accuracy >= thresholds["min_accuracy_when_low"]:
            return
        evidence = {
            "initial_loss": initial,
            "best_loss": best,
            "final_loss": run.get("final_loss"),
            "accuracy": accuracy,
            "steps": run.get("steps"),
            "samples": run.get("samples"),
            "lr": run.get("lr"),
            "loss_curve": run.get("curve"),
        }
        if run.get("truncated") and not run.get("diverged"):
            yield self.finding(
                f"The tiny-batch overfit ran out of time after {run.get('steps')} steps "
                f"(loss {initial:.4g} → {best:.4g}); it could not be judged.",
                "Give the protocol more time (`budget=` in `babysit.check`, "
                "`--preflight-budget` for `babysit audit`) or a smaller model to check.",
                evidence=evidence,
                severity=Severity.INFO,
            )
            return
        still_learning = accurate and not run.get("plateaued") and not run.get("diverged")
        if still_learning:
            # 100 % accuracy and the loss still falling: a slow learner, not a broken one
            yield self.finding(
                f"{run.get('steps')} Adam steps on {run.get('samples')} samples took the loss from "
                f"{initial:.4g} to {best:.4g} ({best / initial:.1%} of the start) and it was still "
                "falling: not overfit yet, but nothing suggests it cannot be.",
                "Nothing to fix if the model is small or heavily constrained. To confirm, "
                "train the tiny batch longer:\n\n```python\nopt = torch.optim.Adam("
                "model.parameters(), lr=3e-3)\nfor _ in range(500):\n    opt.zero_grad()\n"
                "    loss = loss_fn(model(x[:8]), y[:8]); loss.backward(); opt.step()\n```",
                evidence=evidence,
                severity=Severity.INFO,
            )
            return
        got = f"loss {initial:.4g} → best {best:.4g} ({best / initial:.1%} of the start)"
        if accuracy is not None:
            got += f", accuracy {accuracy:.0%}"
        causes = _ranked_causes(trace, run)
        ranked = "\n".join(f"{i}. {cause}" for i, cause in enumerate(causes, 1))
        yield self.finding(
            f"With regularization off, {run.get('steps')} Adam steps on {run.get('samples')} "
            f"samples got {got}; a working model memorizes them to ~0.",
            f"Likely causes, most likely first:\n\n{ranked}",
            evidence=evidence,
        )


def _smoothing_floor(trace: Trace) -> float:
    """The lowest cross-entropy reachable with label smoothing: the smoothed targets' entropy."""
    events = [e for e in trace.training_losses() if e.get("kind") == "cross_entropy"]
    if not events:
        return 0.0
    eps, classes = events[0].get("label_smoothing") or 0.0, events[0].get("num_classes") or 0
    if not 0 < eps < 1 or classes < 2:
        return 0.0
    top, rest = 1 - eps + eps / classes, eps / classes
    return -(top * math.log(top) + (classes - 1) * rest * math.log(rest))


def _ranked_causes(trace: Trace, run: dict[str, Any]) -> list[str]:
    causes: list[str] = []
    grads = trace.experiments.get("gradients") or {}
    missing = list(grads.get("no_grad") or []) + list(grads.get("zero_grad") or [])
    if missing:
        shown = ", ".join(f"`{n}`" for n in missing[:4])
        causes.append(
            f"No gradient reaches {len(missing)} parameter tensor(s) ({shown}): a `.detach()`, "
            "a `torch.no_grad()` block or a non-differentiable op cuts them off "
            "(see `parameters-without-gradient`)."
        )
    chain = signal_chain(trace)
    hidden = [layer for layer in chain[:-1] if math.isfinite(layer.relative)]
    if hidden and min(layer.relative for layer in hidden) < 1e-4:
        causes.append(
            "The activations vanish through depth at init (down to "
            f"{min(layer.relative for layer in hidden):.2g}× the input std), so almost no "
            "gradient reaches the early layers (see `activation-variance-unstable`)."
        )
    out_of_range = [e for e in trace.losses if e.get("targets_out_of_range")]
    if out_of_range:
        causes.append("Some targets are out of range for the loss (see `targets-out-of-range`).")
    if run.get("outputs_are_probabilities"):
        causes.append(
            "The model outputs probabilities (rows in [0, 1] summing to 1) but the loss expects "
            "logits: remove the final `Softmax` (`CrossEntropyLoss` applies `log_softmax` "
            "itself), or use `log_softmax` with `NLLLoss`."
        )
    zero = run.get("zero_input_loss")
    final = run.get("final_loss")
    if zero is not None and final is not None and zero <= final * 1.05 + 1e-6:
        causes.append(
            f"The loss is the same with the inputs zeroed ({zero:.4g} vs {final:.4g}): the "
            "model's output does not depend on its input (see `input-independent-output`)."
        )
    if run.get("diverged"):
        causes.append(
            f"The loss diverged (non-finite or 10× its start) even at lr {run.get('lr'):g}: "
            "look for numerically unstable ops (log of zero, exp overflow, division by ~0)."
        )
    causes.append(
        "The targets do not match the inputs (shuffled separately, off by one, or the wrong "
        "column): print a few (input, target) pairs from the batch."
    )
    causes.append(
        "The model is too small or too constrained for the output (a bottleneck narrower than "
        "the number of classes, an activation on the output layer that cannot reach the targets)."
    )
    return causes
