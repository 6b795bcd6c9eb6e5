from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.lint import analyses
from babysit.lint.analysis import Analysis, method_call
from babysit.trace import Trace


class WeightDecayOnNormAndBias(Check):
    """Weight decay applies to biases and normalization weights too (one parameter group).

    ## What it does
    Finds optimizers built as `torch.optim.X(model.parameters(), weight_decay=w)` with a
    literal `w > 0`: a single parameter group over every parameter of the model, so biases
    and the gains/shifts of BatchNorm/LayerNorm are decayed like the weight matrices.

    ## Why is this bad?
    Weight decay is meant to limit the scale of weights that multiply inputs. Decaying biases
    and normalization parameters adds no useful regularization and pulls LayerNorm/BatchNorm
    gains toward zero, which can hurt accuracy; most reference recipes (BERT, GPT-2/nanoGPT,
    timm) exclude them. It is a tuning choice, not a bug, hence info.

    ## Example
    ```python
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    ```

    ## Fix
    Two parameter groups: decay the matrices and conv kernels (2-D and more), not the rest:
    ```python
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=3e-4,
    )
    ```

    ## Thresholds
    None: a static rule (only a literal weight decay above 0 is reported).

    ## References
    * I. Loshchilov, F. Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019).
    * A. Karpathy, nanoGPT `configure_optimizers` (2-D parameters decay, others do not).
    """

    id = "BS910"
    name = "weight-decay-on-norm-and-bias"
    severity = Severity.INFO
    summary = "weight decay over model.parameters() in one group also decays biases and norms"
    requires = ("sources",)

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        for a in analyses(trace):
            for call in a.optimizer_constructions:
                decay = a.argument(call, -1, "weight_decay")
                if not (
                    isinstance(decay, ast.Constant)
                    and isinstance(decay.value, int | float)
                    and not isinstance(decay.value, bool)
                    and decay.value > 0
                ):
                    continue
                params = a.argument(call, 0, "params")
                if params is None or not _all_parameters(a, params):
                    continue
                yield self.finding(
                    f"`{ast.unparse(call.func)}` decays every parameter of "
                    f"`{ast.unparse(params)}` by {decay.value}, biases and normalization "
                    "weights included.",
                    "Put parameters with fewer than 2 dimensions (biases, norm gains) in a "
                    'second group with `"weight_decay": 0.0`.',
                    evidence={"weight_decay": decay.value},
                    **a.where(call),
                )


def _all_parameters(a: Analysis, params: ast.expr) -> bool:
    """``params`` is ``model.parameters()`` (directly, through a variable, or in ``list()``)."""
    leaves = a.origins(params)
    if not leaves:
        return False
    for leaf, _ in leaves:
        if (
            isinstance(leaf, ast.Call)
            and isinstance(leaf.func, ast.Name)
            and leaf.func.id == "list"
        ):
            leaf = leaf.args[0] if len(leaf.args) == 1 else leaf
        if not (method_call(leaf, "parameters") and not leaf.args):  # type: ignore[union-attr]
            return False
    return True
