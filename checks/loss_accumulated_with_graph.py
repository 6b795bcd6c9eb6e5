from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.lint import analyses
from babysit.lint.analysis import Analysis, terminal_name
from babysit.lint.loops import backward_calls, outer_loops
from babysit.lint.scopes import Ctx
from babysit.trace import Trace

_CRITERION_NAME = re.compile(
    r"^(criterion\w*|crit|\w*loss_?fu?n\w*|\w*loss_func\w*|\w*loss_function\w*|lossfn)$", re.I
)
_KEEPS_GRAPH = frozenset({"mean", "sum", "squeeze", "view", "reshape", "float", "to"})


class LossAccumulatedWithGraph(Check):
    """A training loop sums or stores the loss tensor itself, keeping every step's graph.

    ## What it does
    In loops that call `.backward()`, finds `total += loss`, `total = total + loss` and
    `losses.append(loss)` where `loss` is the result of a loss function or criterion call
    (`F.cross_entropy(...)`, `criterion(...)`, `outputs.loss`), possibly scaled, and not turned
    into a number or detached (`.item()`, `.detach()`, `float()`). An accumulator that is
    itself back-propagated (a sum of task losses) is left alone.

    ## Why is this bad?
    The loss tensor references the whole autograd graph of its step. Adding it to a running
    total (or keeping it in a list) keeps every step's graph, activations included, alive:
    memory grows every iteration until the process runs out of memory, and the additions are
    tracked by autograd for nothing.

    ## Example
    ```python
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        running_loss += loss
    ```

    ## Fix
    ```python
        running_loss += loss.item()  # or loss.detach() to stay on the device
    ```

    ## Thresholds
    None: a static rule.

    ## References
    * PyTorch FAQ, "My model reports cuda runtime error(2): out of memory" ("Don't accumulate
      history across your training loop").
    """

    id = "BS907"
    name = "loss-accumulated-with-graph"
    severity = Severity.WARNING
    summary = "a training loop accumulates the loss tensor (not .item()), keeping every graph"
    requires = ("sources",)

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        for a in analyses(trace):
            for node, accumulator, value in _accumulations(a):
                loops = outer_loops(node, a)
                if not any(backward_calls(a, loop) for loop in loops):
                    continue
                ctx = a.ctx(value)
                if not _carries_graph(a, value, ctx):
                    continue
                if accumulator in _backpropagated_names(a, a.scope_root(node)):
                    continue
                text = ast.unparse(value)
                yield self.finding(
                    f"`{ast.unparse(node).splitlines()[0]}` keeps the autograd graph of every "
                    f"step alive: `{text}` is a loss tensor, not a number; memory grows each "
                    "iteration.",
                    f"Accumulate a number: `{text}.item()` (or `{text}.detach()` to stay on the "
                    "device).",
                    evidence={"accumulator": accumulator, "value": text},
                    **a.where(node),
                )


def _accumulations(a: Analysis) -> Iterable[tuple[ast.AST, str, ast.expr]]:
    """(statement or call, accumulator name, accumulated expression)."""
    for node in [*a.assignments, *a.calls]:
        if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add):
            name = terminal_name(node.target)
            if name:
                yield node, name, node.value
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.value, ast.BinOp)
            and isinstance(node.value.op, ast.Add)
        ):
            name = terminal_name(node.targets[0])
            target = ast.unparse(node.targets[0])
            left, right = node.value.left, node.value.right
            if ast.unparse(left) == target:
                yield node, name or target, right
            elif ast.unparse(right) == target:
                yield node, name or target, left
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "append"
            and len(node.args) == 1
        ):
            name = terminal_name(node.func.value)
            if name:
                yield node, name, node.args[0]


def _carries_graph(a: Analysis, expr: ast.expr, ctx: Ctx | None, depth: int = 0) -> bool:
    if depth > 6:
        return False
    if isinstance(expr, ast.BinOp):
        return _carries_graph(a, expr.left, ctx, depth + 1) or _carries_graph(
            a, expr.right, ctx, depth + 1
        )
    leaves = a.origins(expr, ctx)
    if not leaves:
        return False
    return all(_graph_leaf(a, leaf, leaf_ctx, depth) for leaf, leaf_ctx in leaves)


def _graph_leaf(a: Analysis, leaf: ast.expr, ctx: Ctx, depth: int) -> bool:
    if isinstance(leaf, ast.BinOp):
        return _carries_graph(a, leaf, ctx, depth + 1)
    if isinstance(leaf, ast.Attribute) and leaf.attr == "loss":
        return _is_call_result(a, leaf.value, ctx)  # HF style: outputs = model(**batch)
    if not isinstance(leaf, ast.Call):
        return False
    func = leaf.func
    if isinstance(func, ast.Attribute) and func.attr in _KEEPS_GRAPH and not leaf.args:
        return _carries_graph(a, func.value, ctx, depth + 1)
    if a.loss_kind(leaf):
        return True
    name = terminal_name(func)
    return bool(name and _CRITERION_NAME.match(name)) and a.qualname(func) is None


def _is_call_result(a: Analysis, expr: ast.expr, ctx: Ctx) -> bool:
    """``outputs`` in ``outputs.loss`` comes from a call (a model's forward pass)."""
    leaves = a.origins(expr, ctx)
    return bool(leaves) and all(isinstance(leaf, ast.Call) for leaf, _ in leaves)


def _backpropagated_names(a: Analysis, root: ast.AST) -> set[str]:
    """Names whose value reaches a ``.backward()`` in ``root`` (directly or through
    assignments): accumulating into those is building the objective, not logging it."""
    key = ("backpropagated", id(root))
    if key in a._memo:
        return a._memo[key]  # type: ignore[return-value]
    names: set[str] = set()
    for call in backward_calls(a, root):
        func = call.func
        sources = list(call.args)
        if isinstance(func, ast.Attribute):
            sources.append(func.value)
        for source in sources:
            names |= {n.id for n in ast.walk(source) if isinstance(n, ast.Name)}
            names |= {n.attr for n in ast.walk(source) if isinstance(n, ast.Attribute)}
    assignments = [n for n in a.assignments_under(root) if not isinstance(n, ast.AnnAssign)]
    changed = True
    while changed:
        changed = False
        for node in assignments:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(terminal_name(t) in names for t in targets):
                found = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
                if not found <= names:
                    names |= found
                    changed = True
    a._memo[key] = names
    return names
