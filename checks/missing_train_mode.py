from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.lint import analyses
from babysit.lint import torchapi as api
from babysit.lint.analysis import Analysis
from babysit.lint.loops import Event, events
from babysit.lint.scopes import FUNCTION_NODES
from babysit.trace import Trace

#: Models that are put in eval mode on purpose and never trained (distillation teachers,
#: EMA copies, frozen feature extractors, reference policies).
_FROZEN_WORDS = frozenset(
    {"teacher", "ema", "frozen", "target", "ref", "reference", "pretrained", "extractor"}
)


class MissingTrainMode(Check):
    """model.eval() inside the epoch loop, and no model.train() before training resumes.

    ## What it does
    In every loop that both calls `.eval()` on a model and trains (a `.backward()` in the loop,
    or in a helper function of the same file it calls), follows the order of `.eval()`,
    `.train()` and backward passes around the loop, looking into those helpers, and reports
    the `.eval()` after which a backward pass runs again with no `.train()` on that model in
    between (on the next iteration). Models that are only evaluated (a distillation teacher, an
    EMA copy) are left alone: the rule only considers models given to an optimizer or switched
    to `.train()` somewhere in the file. When a condition picks the mode of each pass
    (`if phase == "train": model.train() else: model.eval()`, the PyTorch tutorial's phase
    loop), the backward pass follows the same condition, and nothing is reported.

    ## Why is this bad?
    After the first validation the model stays in eval mode for the rest of training: Dropout
    is off (no regularization, faster overfitting) and BatchNorm normalizes with, and never
    updates, its running statistics. Training goes on without an error and usually a little
    worse, which is hard to notice.

    ## Example
    ```python
    for epoch in range(epochs):
        for x, y in train_loader:
            ...
            loss.backward()
            optimizer.step()
        model.eval()
        validate(model, val_loader)
    ```

    ## Fix
    ```python
    for epoch in range(epochs):
        model.train()
        for x, y in train_loader:
            ...
    ```

    ## Thresholds
    None: a static rule.

    ## References
    * PyTorch documentation, `torch.nn.Module.train` / `eval`.
    """

    id = "BS905"
    name = "missing-train-mode"
    severity = Severity.WARNING
    summary = "model.eval() in the epoch loop and no model.train() before training resumes"
    requires = ("sources",)

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        for a in analyses(trace):
            reported: set[int] = set()
            for loop in a.loops:
                if a.is_lightning_module(a.enclosing_class(loop)):
                    continue
                sequence = events(a, loop)
                kinds = {e.kind for e in sequence}
                if not {"eval", "backward"} <= kinds:
                    continue
                for culprit, backward in _train_after_eval(a, sequence, loop):
                    if id(culprit.site) in reported:
                        continue
                    reported.add(id(culprit.site))
                    model = culprit.receiver
                    yield self.finding(
                        f"`{model}` is switched to eval mode here (line "
                        f"{a.location(culprit.site)[0]}) inside the loop at line "
                        f"{a.location(loop)[0]}, and the backward pass at line "
                        f"{a.location(backward.site)[0]} runs again without `{model}.train()`: "
                        "after the first evaluation, training continues with Dropout off and "
                        "BatchNorm frozen.",
                        f"Call `{model}.train()` at the start of each epoch (before the training "
                        "loop), or right after the evaluation.",
                        evidence={
                            "model": model,
                            "loop_line": a.location(loop)[0],
                            "backward_line": a.location(backward.site)[0],
                        },
                        **a.where(culprit.site),
                    )


def _train_after_eval(
    a: Analysis, sequence: list[Event], loop: ast.AST
) -> list[tuple[Event, Event]]:
    """(eval event, backward event) pairs where the backward runs with that model in eval
    mode, simulating two passes around the loop."""
    state: dict[str, Event | None] = {}
    found: list[tuple[Event, Event]] = []
    for _ in range(2):
        switched_to_train: set[str] = set()
        for event in sequence:
            receiver = event.receiver or ""
            if event.kind == "eval" and any(
                receiver.startswith(parent + ".") for parent in switched_to_train
            ):
                # `model.train(); model.backbone.eval()`: a frozen part kept in eval mode on
                # purpose (its BatchNorm statistics fixed) while the rest trains
                state[receiver] = None
            elif event.kind == "eval":
                # `if phase == "train": model.train() else: model.eval()`: a condition picks
                # the mode of each pass, and the backward pass follows the same condition
                chosen = _chosen_by_condition(a, event, sequence, loop)
                state[receiver] = None if chosen else event
            elif event.kind == "train":
                switched_to_train.add(receiver)
                for other in state:
                    if _related(other, receiver):
                        state[other] = None
            else:
                for other, culprit in state.items():
                    if culprit is not None and _is_trained(a, other):
                        found.append((culprit, event))
                        state[other] = None
    return found


def _chosen_by_condition(a: Analysis, switch: Event, sequence: list[Event], loop: ast.AST) -> bool:
    """``switch`` (an eval) and a ``.train()`` of the same model sit in different branches of
    conditions inside ``loop`` (``if``/``else``, ``elif``, two ``if``s, ``x if c else y``): the
    mode of each pass follows a condition that the simple sequence cannot evaluate."""
    branch = _innermost_branch(a, switch.site, loop)
    if branch is None:
        return False
    return any(
        other.kind == "train"
        and _related(other.receiver or "", switch.receiver or "")
        and _innermost_branch(a, other.site, loop) not in (None, branch)
        for other in sequence
    )


def _innermost_branch(a: Analysis, node: ast.AST, loop: ast.AST) -> tuple[int, str] | None:
    """(id of the innermost ``if``/conditional expression inside ``loop`` holding ``node``, the
    branch: ``body`` or ``orelse``), or ``None`` when ``node`` runs unconditionally in it."""
    child = node
    for ancestor in a.ancestors(node):
        if ancestor is loop or isinstance(ancestor, FUNCTION_NODES):
            return None
        if isinstance(ancestor, ast.If | ast.IfExp) and child is not ancestor.test:
            body = ancestor.body if isinstance(ancestor, ast.If) else [ancestor.body]
            return id(ancestor), "body" if any(child is b for b in body) else "orelse"
        child = ancestor
    return None


def _related(a: str, b: str) -> bool:
    """``model`` and ``model.module`` are the same network; ``self.train()`` covers
    ``self.model``."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def _is_trained(a: Analysis, receiver: str) -> bool:
    key = ("trained", hash(receiver))
    if key not in a._memo:
        a._memo[key] = _trained_uncached(a, receiver)
    return a._memo[key]  # type: ignore[return-value]


def _trained_uncached(a: Analysis, receiver: str) -> bool:
    word = re.compile(rf"(?<![\w.]){re.escape(receiver)}\b")
    optimizers = a.optimizer_constructions
    if any(word.search(ast.unparse(call)) for call in optimizers):
        return True
    from babysit.lint.loops import mode_switch

    for call in a.calls:
        if mode_switch(a, call) == "train" and _related(ast.unparse(call.func.value), receiver):  # type: ignore[attr-defined]
            return True
    if optimizers:
        return False  # the file builds its optimizers, and not over this model
    return not (api.word_tokens(receiver) & _FROZEN_WORDS)
