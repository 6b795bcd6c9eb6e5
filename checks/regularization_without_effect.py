from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.trace import Trace

ADAM_FAMILY = ("Adam", "Adamax", "NAdam", "RAdam")


class RegularizationWithoutEffect(Check):
    """Switching the model's regularization on does not make the tiny-batch loss any higher.

    ## What it does
    Repeats the tiny-batch overfit with the user's regularization on (their dropout
    probabilities and their optimizer's weight decay) for the same number of steps, and
    compares the final loss with the unregularized run. Regularization that works makes
    memorizing harder, so the loss must end higher. It also reports dropout layers with
    `p = 0`, dropout modules that `forward` never calls, and, at `info` level, a model with no
    regularization at all and Adam combined with `weight_decay` (an L2 term that adaptive step
    sizes weaken; AdamW decouples it).

    ## Why is this bad?
    Regularization you think you have but do not is a silent difference between the model you
    designed and the one you train: the run overfits and you tune dropout or weight decay that
    change nothing.

    ## Example
    ```python
    self.drop = nn.Dropout(0.5)
    def forward(self, x):
        return self.head(torch.relu(self.body(x)))   # self.drop is never called
    ```

    ## Fix
    Call the dropout layers in `forward`, give them a probability (the lecture's rule of thumb
    is 0.2–0.5), and use decoupled weight decay:
    ```python
    h = self.drop(torch.relu(self.body(x)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    ```

    ## Thresholds
    * `min_increase` = 0: with dropout on, the final loss must be higher than the
      unregularized final loss after the same number of steps. Dropout that runs always makes
      the training-mode loss of a memorized batch noisier and higher (0.2 dropout in a small
      CNN: 0.0354 against 0.0320 after 8 steps), so only dropout that has no effect at all
      fires.
    * Weight decay alone is not judged by this experiment: at the usual strengths (1e-4 to
      5e-4) it barely changes a 100-step run on 8 samples, by design; it acts over a full run.

    ## References
    * The babysitting checklist (lecture "Deep learning optimization II"): "turn on
      regularization, the loss should be higher than before"; dropout 20–50 %; weight decay
      1e-4 or 5e-4.
    * I. Loshchilov, F. Hutter, "Decoupled Weight Decay Regularization", ICLR 2019 (AdamW).
    """

    id = "BS501"
    name = "regularization-without-effect"
    severity = Severity.WARNING
    summary = "the model's regularization is absent or inert on the tiny-batch test"
    requires = ("experiments.regularization",)
    thresholds = {"min_increase": 0.0}

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        run = trace.experiments["regularization"]
        present = run.get("present") or {}
        dropout = present.get("dropout") or []
        active = present.get("active_dropout") or []
        weight_decay = present.get("weight_decay") or 0.0
        optimizer = present.get("optimizer")
        if dropout and not active:
            names = ", ".join(f"`{d['name']}`" for d in dropout[:4])
            yield self.finding(
                f"The model has {len(dropout)} dropout layer(s) ({names}), all with p = 0: "
                "they do nothing.",
                "Give them a drop probability (0.2–0.5 is the usual range), or remove them:\n\n"
                "```python\nnn.Dropout(p=0.3)\n```",
                evidence={"dropout": dropout[:8]},
                layer=dropout[0]["name"],
            )
        elif not active and weight_decay == 0:
            yield self.finding(
                "The model has no regularization: no dropout and no weight decay.",
                "Fine while the model underfits. Once validation loss rises while training loss "
                "falls, add weight decay (1e-4 to 5e-4) and/or dropout (0.2–0.5):\n\n"
                "```python\noptimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, "
                "weight_decay=1e-4)\n```",
                evidence={"dropout_layers": 0, "weight_decay": 0.0, "optimizer": optimizer},
                severity=Severity.INFO,
            )
        if active and "final_loss" in run:
            off = trace.experiments.get("overfit") or {}
            loss_off, loss_on = off.get("final_loss"), run.get("final_loss")
            evidence = {
                "loss_without_regularization": loss_off,
                "loss_with_regularization": loss_on,
                "dropout": active[:8],
                "weight_decay": weight_decay,
                "dropout_calls": run.get("dropout_calls"),
                "steps": run.get("steps"),
            }
            if run.get("dropout_calls") == 0:
                yield self.finding(
                    f"The model defines {len(active)} dropout layer(s) with p > 0, but forward "
                    "never calls them.",
                    "Call the dropout modules in `forward` (or use `F.dropout(x, p, "
                    "self.training)`):\n\n```python\nh = self.drop(torch.relu(self.fc1(x)))\n```",
                    evidence=evidence,
                    layer=active[0]["name"],
                )
            elif (
                loss_off is not None
                and loss_on is not None
                and loss_on <= loss_off * (1 + thresholds["min_increase"])
            ):
                yield self.finding(
                    f"With regularization on (dropout {_ps(active)}"
                    + (f", weight decay {weight_decay:g}" if weight_decay else "")
                    + f") the tiny-batch loss ends at {loss_on:.4g}, no higher than without it "
                    f"({loss_off:.4g}): the regularization has no measurable effect.",
                    "Check that the dropout layers sit on the path the data takes (not after the "
                    "last layer, not on an unused branch) and that the model is in training "
                    "mode while it trains.",
                    evidence=evidence,
                    layer=active[0]["name"],
                )
        if (
            weight_decay > 0
            and optimizer in ADAM_FAMILY
            and not present.get("decoupled_weight_decay")
        ):
            yield self.finding(
                f"{optimizer} with weight_decay={weight_decay:g} adds an L2 term to the "
                "gradient, which the adaptive step sizes then shrink for the weights with large "
                "gradients: it regularizes much less than the number suggests.",
                "Use decoupled weight decay:\n\n```python\noptimizer = torch.optim.AdamW("
                f"model.parameters(), lr=1e-3, weight_decay={weight_decay:g})\n```",
                evidence={"optimizer": optimizer, "weight_decay": weight_decay},
                severity=Severity.INFO,
            )


def _ps(layers: list[dict[str, Any]]) -> str:
    return "p=" + "/".join(sorted({f"{d['p']:g}" for d in layers}))
