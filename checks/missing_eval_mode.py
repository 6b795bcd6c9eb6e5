from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.lint import analyses
from babysit.lint.modes import (
    callers_set_eval,
    eval_set_before,
    evaluation_loops,
    mode_set_by_owner,
    model_is_parameter,
)
from babysit.trace import Trace


class MissingEvalMode(Check):
    """An evaluation loop runs the model without model.eval() first.

    ## What it does
    Finds evaluation loops — loops that run a model without training it and run under
    `torch.no_grad()`/`inference_mode()`, iterate a loader whose name says val/valid/test/eval,
    compute a `val_*`/`test_*` metric, or live in a function called `evaluate`/`validate` — with
    no `.eval()` (or `.train(False)`) before the first forward pass in the same function, in a
    helper of the same file it calls, or, when the function receives the model from its
    callers, before each of its call sites. Lightning modules are skipped (the trainer switches
    modes), and so are loops over `self.<submodule>` in a model's own methods (generation code:
    its user sets the mode) or in a class whose base or attribute is defined in another file.
    Whether the model has Dropout or BatchNorm, the layers for which the mode matters,
    is not knowable statically, so this is a warning.

    ## Why is this bad?
    In training mode Dropout keeps dropping units and BatchNorm normalizes with the statistics
    of the evaluation batch (and updates its running statistics with evaluation data): the
    validation metrics are noisy and pessimistic, depend on the batch size, and the running
    statistics drift toward the validation set.

    ## Example
    ```python
    with torch.no_grad():
        for x, y in val_loader:
            val_loss += criterion(model(x), y).item()
    ```

    ## Fix
    ```python
    model.eval()
    with torch.no_grad():
        for x, y in val_loader:
            val_loss += criterion(model(x), y).item()
    model.train()
    ```

    ## Thresholds
    None: a static rule.

    ## References
    * PyTorch documentation, `torch.nn.Module.eval` ("This has an effect only on certain
      modules ... Dropout, BatchNorm").
    * PyTorch tutorial "Optimizing Model Parameters" (the test loop calls `model.eval()`).
    """

    id = "BS904"
    name = "missing-eval-mode"
    severity = Severity.WARNING
    summary = "an evaluation loop runs the model without model.eval() first"
    requires = ("sources",)

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        for a in analyses(trace):
            for found in evaluation_loops(a):
                forward = found.forwards[0]
                if eval_set_before(a, forward) or mode_set_by_owner(a, forward):
                    continue
                function = a.enclosing_function(found.loop)
                if function is not None:
                    by_callers = callers_set_eval(a, function)
                    if by_callers or (by_callers is None and model_is_parameter(a, forward)):
                        continue
                model = ast.unparse(forward.func)
                yield self.finding(
                    f"this loop evaluates `{model}` ({'; '.join(found.signals)}) but "
                    f"`{model}.eval()` is never called before it, so Dropout and BatchNorm "
                    "(if the model has any: not knowable statically) run in training mode.",
                    f"Call `{model}.eval()` before the evaluation loop (and `{model}.train()` "
                    "before training resumes).",
                    evidence={"model": model, "signals": found.signals},
                    **a.where(found.loop),
                )
