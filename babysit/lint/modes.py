"""Shared reasoning of the train/eval mode rules: evaluation loops and who set eval mode."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from babysit.lint.analysis import Analysis, terminal_name
from babysit.lint.loops import (
    Loop,
    evaluation_signals,
    events,
    model_calls,
    needs_gradients,
    outer_loops,
)
from babysit.lint.scopes import pos


@dataclass(frozen=True)
class EvalLoop:
    loop: Loop
    forwards: list[ast.Call]  # model forward passes in the loop, in source order
    signals: list[str]  # why it is an evaluation loop


def evaluation_loops(a: Analysis, *, include_no_grad: bool = True) -> Iterator[EvalLoop]:
    """Loops that run a model without training it and look like evaluation; the outermost
    such loop of a nest only. Lightning modules are skipped (the trainer switches modes)."""
    seen: set[int] = set()
    for loop in a.loops:
        if a.is_lightning_module(a.enclosing_class(loop)) or in_unit_test(a, loop):
            continue
        if any(id(outer) in seen for outer in outer_loops(loop, a)):
            continue
        if needs_gradients(a, loop):
            continue
        forwards = model_calls(a, loop)
        if not forwards:
            continue
        signals = evaluation_signals(a, loop, include_no_grad=include_no_grad)
        if signals:
            seen.add(id(loop))
            yield EvalLoop(loop, forwards, signals)


def in_unit_test(a: Analysis, node: ast.AST) -> bool:
    """``node`` is in a pytest test (``test_*`` in a ``test_*.py`` / ``*_test.py`` file): unit
    tests run models in whatever mode they are testing."""
    name = a.path.replace("\\", "/").rsplit("/", 1)[-1]
    if not (name.startswith("test_") or name.endswith("_test.py")):
        return False
    function = a.enclosing_function(node)
    while function is not None:
        if function.name.startswith("test"):
            return True
        function = a.enclosing_function(function)
    return False


def eval_set_before(a: Analysis, node: ast.AST, root: ast.AST | None = None) -> bool:
    """Some ``.eval()`` (or a helper of this file that calls one) runs before ``node`` in its
    function (or in the module code around it)."""
    root = root or a.scope_root(node)
    here = pos(node)
    return any(e.kind == "eval" and e.at < here for e in events(a, root))


def callers_set_eval(a: Analysis, function: ast.AST) -> bool | None:
    """Whether every call site in this file of ``function`` follows an ``.eval()`` in its
    caller: ``True`` if one does, ``False`` if none does, ``None`` without call sites."""
    sites = a.call_sites(function)  # type: ignore[arg-type]
    if not sites:
        return None
    return any(eval_set_before(a, site) for site in sites)


def model_is_parameter(a: Analysis, call: ast.Call) -> bool:
    """The called model arrives as a parameter (or as ``self.x``) of the enclosing function:
    its mode is set by whoever passes it."""
    func = call.func
    root = func
    while isinstance(root, ast.Attribute | ast.Subscript):
        root = root.value
    if not isinstance(root, ast.Name):
        return True
    if root.id in ("self", "cls"):
        return True
    function = a.enclosing_function(call)
    return a.is_parameter(root.id, function) or terminal_name(func) is None
