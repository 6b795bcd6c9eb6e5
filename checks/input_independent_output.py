from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.trace import Trace


class InputIndependentOutput(Check):
    """The model does no better with its real inputs than with inputs set to zero.

    ## What it does
    After the tiny-batch overfit (regularization off), evaluates the trained copy on the same
    samples twice: with the real inputs and with the main input zeroed. A model that uses its
    input is far better on the real inputs; one that ignores it scores the same.

    ## Why is this bad?
    The model's output does not depend on the data: a leftover debugging line
    (`x = torch.zeros_like(x)`), a stale variable fed to the network, a mask that blanks the
    input, or a branch that bypasses the input entirely. Such a model can at best learn the
    label prior, and the loss curve looks like slow, normal progress toward it.

    ## Example
    ```python
    def forward(self, x):
        h = torch.zeros_like(x)          # debugging leftover
        return self.net(h)
    ```

    ## Fix
    Trace the input through `forward` and make sure it reaches the first layer:
    ```python
    def forward(self, x):
        return self.net(x)
    ```

    ## Thresholds
    `min_gap` = 0.1: the zero-input loss must be at least 10 % higher than the real-input loss.
    A working model measures a factor of 30–500 (the real inputs are memorized to ~0.5–5 % of
    the initial loss, the zeroed ones give one constant prediction for every sample); a model
    that ignores its input measures exactly 1. Skipped when every target in the tiny batch is
    the same (a constant prediction is then correct).

    ## References
    * A. Karpathy, "A Recipe for Training Neural Networks" (2019): "input-independent
      baseline: set all your inputs to zero; it should perform worse than with your data".
    """

    id = "BS203"
    name = "input-independent-output"
    severity = Severity.WARNING
    summary = "the model does as well with zeroed inputs as with real ones"
    requires = ("experiments.overfit",)
    implied_by = ("symmetric-init",)
    thresholds = {"min_gap": 0.1}

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        run = trace.experiments["overfit"]
        real, zero = run.get("final_loss"), run.get("zero_input_loss")
        initial = run.get("initial_loss")
        if real is None or zero is None or not initial or run.get("constant_targets"):
            return
        gap = zero - real
        if zero <= real * (1 + thresholds["min_gap"]) + 1e-8:
            yield self.finding(
                f"After training on {run.get('samples')} samples, the loss with the real "
                f"inputs is {real:.4g} and with the inputs zeroed {zero:.4g}: the model's output "
                "does not depend on its input.",
                "Follow the input through `forward`: a debugging leftover such as "
                "`x = torch.zeros_like(x)`, a stale variable, or a mask that blanks the input "
                "keeps the data from reaching the first layer.\n\n"
                "```python\nwith torch.no_grad():\n"
                "    print((model(x) - model(torch.zeros_like(x))).abs().max())  # must be > 0\n"
                "```",
                evidence={
                    "loss_real_inputs": real,
                    "loss_zeroed_inputs": zero,
                    "gap": gap,
                    "initial_loss": initial,
                },
            )
