from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.lint import analyses
from babysit.lint.modes import eval_set_before, evaluation_loops
from babysit.trace import Trace


class MissingNoGradInEval(Check):
    """Evaluation forward passes run with autograd on (no no_grad / inference_mode).

    ## What it does
    Finds evaluation loops (after `model.eval()` in the same function; over a loader named
    val/valid/test/eval, computing a `val_*`/`test_*` metric, or in a function called
    `evaluate`/`validate`) whose model forward passes run outside `torch.no_grad()` /
    `torch.inference_mode()`, in a function not decorated with either, and not called from
    inside such a block anywhere in the file. Loops that need gradients on purpose
    (`.backward()`, `torch.autograd.grad`, `requires_grad_`) are left alone.

    ## Why is this bad?
    `model.eval()` switches Dropout and BatchNorm; it does not turn autograd off. Every
    evaluation forward pass then records a graph and keeps its activations: evaluation uses
    several times the memory it needs (out-of-memory errors on a larger validation batch) and
    runs slower. Accumulating such outputs also keeps the graphs alive.

    ## Example
    ```python
    model.eval()
    for x, y in val_loader:
        correct += (model(x).argmax(1) == y).sum().item()
    ```

    ## Fix
    ```python
    model.eval()
    with torch.inference_mode():  # or torch.no_grad(), or decorate the function
        for x, y in val_loader:
            correct += (model(x).argmax(1) == y).sum().item()
    ```

    ## Thresholds
    None: a static rule.

    ## References
    * PyTorch documentation, "Autograd mechanics: locally disabling gradient computation".
    """

    id = "BS906"
    name = "missing-no-grad-in-eval"
    severity = Severity.WARNING
    summary = "evaluation forward passes run with autograd on (no no_grad/inference_mode)"
    requires = ("sources",)

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        for a in analyses(trace):
            for found in evaluation_loops(a, include_no_grad=False):
                if a.in_no_grad(found.loop):
                    continue
                forwards = [f for f in found.forwards if not a.in_no_grad(f)]
                if not forwards or not eval_set_before(a, forwards[0]):
                    continue
                function = a.enclosing_function(found.loop)
                if function is not None and any(
                    a.in_no_grad(site) for site in a.call_sites(function)
                ):
                    continue
                model = ast.unparse(forwards[0].func)
                yield self.finding(
                    f"`{ast.unparse(forwards[0])}` runs in an evaluation loop "
                    f"({'; '.join(found.signals)}) with autograd on: every forward pass "
                    "records a graph and keeps its activations.",
                    "Wrap the evaluation in `with torch.inference_mode():` (or "
                    "`torch.no_grad()`), or decorate the function with `@torch.no_grad()`.",
                    evidence={"model": model, "signals": found.signals},
                    **a.where(forwards[0]),
                )
