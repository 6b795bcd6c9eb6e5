from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.lint import analyses
from babysit.lint.loaders import loader_uses
from babysit.trace import Trace


class EvalLoaderShuffled(Check):
    """A validation or test DataLoader shuffles.

    ## What it does
    Finds `DataLoader(...)` constructions bound to a name that says validation or test
    (`val_loader`, `test_dl`, `loaders["valid"]`, Lightning's `val_dataloader()`), never
    iterated by a loop that calls `.backward()`, with `shuffle=True`.

    ## Why is this bad?
    It does no harm to the metric averaged over the whole set, but it costs a random
    permutation per pass, and anything computed per batch (a logged first batch, per-batch
    predictions saved to disk, metrics over the first N batches) changes from run to run for
    no reason, which makes runs hard to compare.

    ## Example
    ```python
    val_loader = DataLoader(val_set, batch_size=256, shuffle=True)
    ```

    ## Fix
    ```python
    val_loader = DataLoader(val_set, batch_size=256)  # shuffle=False is the default
    ```

    ## Thresholds
    None: a static rule.

    ## References
    * PyTorch tutorials and Lightning's documentation build evaluation loaders with
      `shuffle=False`.
    """

    id = "BS909"
    name = "eval-loader-shuffled"
    severity = Severity.INFO
    summary = "a validation/test DataLoader shuffles (results vary from run to run)"
    requires = ("sources",)

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        for a in analyses(trace):
            for use in loader_uses(a):
                shuffle = a.argument(use.call, 2, "shuffle")
                if use.role != "eval" or use.trained_on:
                    continue
                if not (isinstance(shuffle, ast.Constant) and shuffle.value is True):
                    continue
                yield self.finding(
                    f"`{use.name}` is an evaluation loader built with shuffle=True: per-batch "
                    "results change from run to run for no benefit.",
                    "Drop `shuffle=True` from evaluation loaders.",
                    evidence={"loader": use.name},
                    **a.where(use.call),
                )
