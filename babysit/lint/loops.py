"""Training and evaluation loops: what a loop does, and the order of mode switches in it.

Rules ask: does this loop train (``.backward()``), step which optimizer, reset gradients; is
it an evaluation loop (under ``no_grad``, over a loader called ``val_loader``, accumulating
``val_loss``, in a function called ``evaluate``); and in which order do ``.eval()``,
``.train()`` and backward passes happen, looking into the helper functions of the same file
that a loop calls (one summary per function, memoized).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from babysit.lint import torchapi as api
from babysit.lint.analysis import Analysis, FunctionNode, method_call, terminal_name
from babysit.lint.scopes import FUNCTION_NODES, LOOP_NODES, Pos, pos

Loop = ast.For | ast.AsyncFor | ast.While

_EVAL_FUNCTION_WORDS = frozenset(
    {"eval", "evaluate", "evaluation", "validate", "validation", "val", "valid", "inference"}
)
_EVAL_FUNCTION_NAMES = re.compile(r"^(test|run_test|test_epoch|test_loop|test_step|predict\w*)$")
#: What a validation loop computes, for names that only say "valid" (``valid_loss``).
_RESULT_WORDS = frozenset(
    {"loss", "losses", "acc", "accuracy", "correct", "metric", "metrics", "score", "scores"}
    | {"preds", "predictions", "outputs", "error", "errors", "ppl", "perplexity", "f1", "auc"}
)
#: Calls that need gradients even in evaluation (saliency, adversarial examples).
_GRADIENT_NEEDS = frozenset({"backward", "manual_backward", "requires_grad_"})


def nodes_in(root: ast.AST, *, into_functions: bool = True):
    """Nodes under ``root`` (optionally not descending into nested function definitions)."""
    stack = list(ast.iter_child_nodes(root))
    while stack:
        node = stack.pop()
        yield node
        if into_functions or not isinstance(node, FUNCTION_NODES):
            stack.extend(ast.iter_child_nodes(node))


def is_backward(a: Analysis, call: ast.AST) -> bool:
    if method_call(call, "backward", "manual_backward"):
        return True
    return isinstance(call, ast.Call) and a.qualname(call.func) == "torch.backward"


def backward_calls(a: Analysis, root: ast.AST) -> list[ast.Call]:
    return [c for c in a.calls_under(root) if is_backward(a, c)]


def optimizer_steps(a: Analysis, root: ast.AST) -> list[tuple[ast.Call, ast.expr]]:
    """``(step call, optimizer)`` for every optimizer step under ``root``."""
    steps = []
    for call in a.calls_under(root):
        optimizer = a.stepped_optimizer(call)
        if optimizer is not None:
            steps.append((call, optimizer))
    return steps


def resets_gradients(a: Analysis, root: ast.AST, seen: frozenset[int] = frozenset()) -> bool:
    """Something under ``root`` (or in a function of this file it calls) zeroes gradients:
    ``zero_grad()`` on anything, ``p.grad = None``, ``p.grad.zero_()``."""
    for node in a.assignments_under(root):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Attribute) and t.attr == "grad" for t in node.targets
        ):
            return True
    for call in a.calls_under(root):
        if method_call(call, "zero_grad", "clear_grad", "clear_gradients"):
            return True
        if method_call(call, "zero_", "fill_", "detach_", "requires_grad_") and "grad" in (
            _attribute_chain(call.func.value)  # type: ignore[attr-defined]
        ):
            return True
        for function in a.called_functions(call):
            if id(function) not in seen and resets_gradients(a, function, seen | {id(root)}):
                return True
    return False


def _attribute_chain(expr: ast.AST) -> list[str]:
    names = []
    while isinstance(expr, ast.Attribute | ast.Subscript):
        if isinstance(expr, ast.Attribute):
            names.append(expr.attr)
        expr = expr.value
    return names


def needs_gradients(a: Analysis, root: ast.AST) -> bool:
    """The code under ``root`` trains or takes gradients on purpose."""
    for node in a.calls_under(root):
        if method_call(node, *_GRADIENT_NEEDS) or a.stepped_optimizer(node) is not None:
            return True
        name = a.qualname(node.func)
        if name in ("torch.grad", "torch.enable_grad", "torch.backward"):
            return True
        if name == api.SET_GRAD_ENABLED:
            return True
        if isinstance(node.func, ast.Attribute) and node.func.attr == "step":
            return True  # some other stepping object: not a plain evaluation
    for node in a.assignments_under(root):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Attribute) and t.attr == "requires_grad" for t in node.targets
        ):
            return True
    return False


def iterated(loop: Loop) -> list[ast.expr]:
    """What a ``for`` loop iterates, looking through ``enumerate``/``tqdm``/``zip``."""
    if not isinstance(loop, ast.For | ast.AsyncFor):
        return []
    work, found = [loop.iter], []
    while work:
        expr = work.pop()
        if isinstance(expr, ast.Call) and terminal_name(expr.func) in api.ITERATION_WRAPPERS:
            work.extend(expr.args if terminal_name(expr.func) == "zip" else expr.args[:1])
        else:
            found.append(expr)
    return found


def expression_words(expr: ast.AST) -> str:
    """The identifiers and string keys of an expression, for name conventions:
    ``loaders["val"]`` -> ``loaders val``."""
    words = []
    for node in ast.walk(expr):
        if isinstance(node, ast.Name):
            words.append(node.id)
        elif isinstance(node, ast.Attribute):
            words.append(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            words.append(node.value)
    return " ".join(words)


def evaluation_signals(a: Analysis, loop: Loop, *, include_no_grad: bool = True) -> list[str]:
    """Why ``loop`` looks like an evaluation loop (empty when it does not)."""
    signals = []
    if include_no_grad and a.in_no_grad(loop):
        signals.append("it runs under no_grad/inference_mode")
    for expr in iterated(loop):
        words = expression_words(expr)
        if words and api.says_eval(words):
            signals.append(f"it iterates `{ast.unparse(expr)}`")
            break
    own = [*a.assignments_under(loop, into_functions=False)]
    own += a.calls_under(loop, into_functions=False)
    for node in own:
        target = None
        if isinstance(node, ast.AugAssign | ast.AnnAssign):
            target = node.target
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        elif method_call(node, "append", "extend"):
            target = node.func.value  # type: ignore[attr-defined]
        name = terminal_name(target) if target is not None else None
        if name and _names_an_evaluation_result(name):
            signals.append(f"it computes `{name}`")
            break
    function = a.enclosing_function(loop)
    if function is not None and is_evaluation_function_name(function.name):
        signals.append(f"it is in `{function.name}()`")
    return signals


def _names_an_evaluation_result(name: str) -> bool:
    """``val_loss``, ``test_acc``, ``valid_preds``; not ``val_loader``, and not ``valid_tokens``
    or ``valid_mask`` (in model code "valid" means "not padding")."""
    tokens = api.word_tokens(name)
    if not api.says_eval(name) or "loader" in name.lower():
        return False
    return bool(tokens & (api.EVAL_WORDS - {"valid"})) or bool(tokens & _RESULT_WORDS)


def is_evaluation_function_name(name: str) -> bool:
    return bool(api.word_tokens(name) & _EVAL_FUNCTION_WORDS) or bool(
        _EVAL_FUNCTION_NAMES.match(name)
    )


def model_calls(a: Analysis, root: ast.AST) -> list[ast.Call]:
    return [c for c in a.calls_under(root, into_functions=False) if a.is_model_call(c)]


def outer_loops(loop: ast.AST, a: Analysis) -> list[Loop]:
    """Loops enclosing ``loop`` in the same function, innermost first."""
    found = []
    for ancestor in a.ancestors(loop):
        if isinstance(ancestor, (*FUNCTION_NODES, ast.ClassDef)):
            break
        if isinstance(ancestor, LOOP_NODES):
            found.append(ancestor)
    return found


# -- train/eval mode switches -----------------------------------------------------------------
def mode_switch(a: Analysis, node: ast.AST) -> str | None:
    """``eval`` for ``m.eval()`` / ``m.train(False)``, ``train`` for ``m.train()``."""
    if not method_call(node, "eval", "train") or a.qualname(node.func) is not None:  # type: ignore[attr-defined]
        return None
    call: ast.Call = node  # type: ignore[assignment]
    if call.func.attr == "eval":  # type: ignore[attr-defined]
        return "eval" if not call.args and not call.keywords else None
    flag = (
        call.args[0]
        if call.args
        else next((k.value for k in call.keywords if k.arg == "mode"), None)
    )
    if flag is None:
        return "train" if not call.keywords else None
    if isinstance(flag, ast.Constant) and isinstance(flag.value, bool):
        return "train" if flag.value else "eval"
    return None  # train(mode=some_flag): unknown


@dataclass(frozen=True)
class Event:
    """A mode switch (``eval``/``train``, with its receiver) or a backward pass (``backward``)
    at ``site``: the node in the function being read (a helper's call site for its events)."""

    kind: str
    receiver: str | None
    site: ast.AST
    at: Pos


def events(a: Analysis, root: ast.AST, depth: int = 0) -> list[Event]:
    """Mode switches and backward passes under ``root`` in source order, with the events of
    helper functions of this file inserted at their call sites."""
    found: list[Event] = []
    for node in a.calls_under(root, into_functions=False):
        kind = mode_switch(a, node)
        if kind:
            receiver = ast.unparse(node.func.value)  # type: ignore[attr-defined]
            found.append(Event(kind, receiver, node, pos(node)))
        elif is_backward(a, node):
            found.append(Event("backward", None, node, pos(node)))
        elif depth < 3:
            for function in a.called_functions(node):
                if function is root or a.enclosing_function(node) is function:
                    continue
                mapping = _argument_names(function, node)
                for event in function_events(a, function, depth + 1):
                    receiver = mapping.get(event.receiver, event.receiver)
                    found.append(Event(event.kind, receiver, node, pos(node)))
    found.sort(key=lambda e: e.at)
    return found


def function_events(a: Analysis, function: FunctionNode, depth: int = 0) -> list[Event]:
    key = ("events", id(function))
    if key not in a._memo:
        a._memo[key] = []  # recursion guard
        a._memo[key] = events(a, function, depth)
    return a._memo[key]  # type: ignore[return-value]


def _argument_names(function: FunctionNode, call: ast.Call) -> dict[str | None, str]:
    """Parameter name -> argument text at this call site (for receivers in helpers)."""
    params = [p.arg for p in (*function.args.posonlyargs, *function.args.args)]
    if params and params[0] in ("self", "cls") and isinstance(call.func, ast.Attribute):
        params = params[1:]
    mapping: dict[str | None, str] = {}
    for param, arg in zip(params, call.args, strict=False):
        if isinstance(arg, ast.Starred):
            break
        mapping[param] = ast.unparse(arg)
    for keyword in call.keywords:
        if keyword.arg:
            mapping[keyword.arg] = ast.unparse(keyword.value)
    return mapping
