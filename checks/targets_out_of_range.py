from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.trace import Trace


class TargetsOutOfRange(Check):
    """The targets are outside the range the loss function accepts.

    ## What it does
    Before the first loss calls run, summarizes their targets on the device: class indices for
    cross-entropy/NLL must lie in [0, C) (or equal `ignore_index`), where C is the size of the
    class dimension of the prediction; targets of binary cross-entropy must lie in [0, 1]; class
    probabilities must lie in [0, 1].

    ## Why is this bad?
    On the CPU cross-entropy raises "Target 10 is out of bounds"; on CUDA it is a device-side
    assert that kills the process with no useful message. Binary cross-entropy with logits
    does not check at all: targets such as {0, 255} or {-1, 1} train silently toward the
    wrong optimum.

    ## Example
    ```python
    y = labels_1_to_10                 # 1-based labels, but the head has 10 outputs
    loss = F.cross_entropy(model(x), y)
    ```

    ## Fix
    ```python
    y = y - 1                          # 0-based class indices
    # or size the head for all classes: nn.Linear(128, num_classes)
    # BCE: map targets to {0, 1}, e.g. (y > 0).float()
    ```

    ## Thresholds
    None: any out-of-range target is an error.

    ## References
    * PyTorch documentation, `torch.nn.CrossEntropyLoss` ("target ... in the range [0, C)")
      and `torch.nn.BCEWithLogitsLoss`.
    """

    id = "BS202"
    name = "targets-out-of-range"
    severity = Severity.ERROR
    summary = "class indices outside [0, C) or binary targets outside [0, 1]"
    requires = ("losses",)

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        for event in trace.losses:
            count = event.get("targets_out_of_range")
            if not count:
                continue
            kind = event.get("kind")
            low, high = (event.get("target_range") or [None, None])[:2]
            if kind in ("cross_entropy", "nll_loss") and not event.get("soft_targets"):
                c = event.get("num_classes")
                message = (
                    f"{count} target(s) of {kind} lie outside [0, {c}): the targets range over "
                    f"[{_n(low)}, {_n(high)}] but the prediction has {c} classes."
                )
                fix = (
                    "Make the targets 0-based class indices below the number of outputs, or "
                    "give the head one output per class:\n\n```python\n"
                    + ("y = y - 1  # 1-based labels\n" if low is not None and low >= 1 else "")
                    + f"head = nn.Linear(in_features, {int(high) + 1 if high is not None else 'C'})"
                    "\n```"
                )
            else:
                message = (
                    f"{count} target(s) of {kind} lie outside [0, 1] (range "
                    f"[{_n(low)}, {_n(high)}])."
                )
                fix = (
                    "Map the targets into [0, 1] (e.g. labels in {-1, 1} or {0, 255}):\n\n"
                    "```python\ny = (y > 0).float()\n```"
                )
            yield self.finding(
                message,
                fix,
                evidence={
                    "loss_kind": kind,
                    "out_of_range": count,
                    "target_range": [low, high],
                    "num_classes": event.get("num_classes"),
                    "step": event.get("step"),
                },
                file=event.get("file"),
                line=event.get("line"),
            )
            return


def _n(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:g}"
