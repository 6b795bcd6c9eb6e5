from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.trace import Trace


class BatchMixing(Check):
    """One sample's output depends on the other samples' inputs.

    ## What it does
    Puts a copy of the model in eval mode (so BatchNorm uses its running statistics), runs a
    few samples through it, and backpropagates from one sample's output to the inputs (to the
    embedding output for token ids). Only that sample's input may receive a gradient. Any
    gradient on another sample's input means the model mixes information across the batch.

    ## Why is this bad?
    A `view` or `reshape` that folds the batch dimension together with another one is the
    classic cause: `x.view(-1, N)` on an `(N, F)` tensor, or a `view` after a `permute`. The
    shapes still line up, nothing crashes, and the model learns from its neighbours in the
    batch, so it fails on batches of a different size or order and at inference.

    ## Example
    ```python
    h = self.features(x)                  # (N, C, H, W)
    h = h.view(h.size(1), -1).t()         # mixes samples: rows are not samples any more
    ```

    ## Fix
    Flatten per sample, and permute explicitly before any `view`:
    ```python
    h = h.flatten(1)                      # or h.reshape(h.size(0), -1)
    seq = seq.permute(1, 0, 2).contiguous()   # (T, N, F) -> (N, T, F), then view/reshape
    ```
    If your model couples samples on purpose (attention across the batch, in-batch
    contrastive losses, explicit batch statistics), ignore this check for it. BatchNorm with
    `track_running_stats=False` (batch statistics even in eval mode) is recognized and the
    experiment is skipped with that reason.

    ## Thresholds
    `tolerance` = 1e-6: the largest gradient on another sample's input, relative to the largest
    on the sample's own input. Without mixing it is exactly zero.

    ## References
    * A. Karpathy, "A Recipe for Training Neural Networks" (2019): "use backprop to chart
      dependencies".
    """

    id = "BS302"
    name = "batch-mixing"
    severity = Severity.ERROR
    summary = "outputs depend on other samples' inputs (a view/reshape across the batch)"
    requires = ("experiments.batch_mixing",)
    thresholds = {"tolerance": 1e-6}

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        run = trace.experiments["batch_mixing"]
        for row in run.get("rows", []):
            own, others = row["own"], row["others_max"]
            if others > thresholds["tolerance"] * max(own, 1e-30):
                leaking = [i for i, v in enumerate(_indices(row)) if v is not None]
                yield self.finding(
                    f"In eval mode, the output of sample {row['row']} has a gradient of "
                    f"{others:.3g} with respect to other samples' {run.get('through')} (its own: "
                    f"{own:.3g}) in a batch of {run.get('samples')}: the model mixes samples "
                    "across the batch dimension.",
                    "Look for a `view`/`reshape` that folds the batch dimension together with "
                    "another: flatten with `x.flatten(1)` or `x.reshape(x.size(0), -1)`, and "
                    "`permute` before any `view`.\n\n```python\nh = h.flatten(1)\n```",
                    evidence={
                        "sample": row["row"],
                        "own_gradient": own,
                        "other_samples_max_gradient": others,
                        "samples_receiving_gradient": leaking,
                        "through": run.get("through"),
                    },
                )
                return


def _indices(row: dict[str, Any]) -> list[int | None]:
    others = iter(row.get("others", []))
    values: list[int | None] = []
    size = len(row.get("others", [])) + 1
    for i in range(size):
        if i == row["row"]:
            values.append(None)
            continue
        values.append(i if next(others, 0.0) > 0 else None)
    return values
