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
from babysit.lint.scopes import Ctx, pos


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


def mode_set_by_owner(a: Analysis, call: ast.Call) -> bool:
    """``call`` runs a model reached through ``self`` (``self.decoder``, ``self.model.encoder``,
    ``step = self.__call__``) in a method of a class that is itself a model (an ``nn.Module``),
    that inherits from a class defined elsewhere (a pipeline), or that never assigns that
    attribute (a mixin): the mode of that model is set by code invisible from this file."""
    method = a.enclosing_function(call)
    cls = a.enclosing_class(call)
    if method is None or cls is None or a.parent(method) is not cls or not method.args.args:
        return False
    attributes = _self_attributes(a, call.func, method.args.args[0].arg, a.ctx(call.func))
    if attributes is None:
        return False
    if a.is_module_class(cls) or _inherits_from_elsewhere(a, cls):
        return True
    return any(
        not a.class_attribute(cls, name) and a.method(cls, name) is None for name in attributes
    )


def _self_attributes(
    a: Analysis, expr: ast.expr, me: str, ctx: Ctx, depth: int = 0
) -> set[str] | None:
    """The attributes of ``me`` (``self``) that ``expr`` is reached through, directly or via
    local assignments (``{"model"}`` for ``self.model.encoder``, ``{"__call__"}`` for
    ``step = self.__call__``); ``None`` when some origin is not rooted in ``me``."""
    if depth > 10:
        return None
    if isinstance(expr, ast.IfExp):
        body = _self_attributes(a, expr.body, me, ctx, depth + 1)
        orelse = _self_attributes(a, expr.orelse, me, ctx, depth + 1)
        return None if body is None or orelse is None else body | orelse
    root, first = expr, None
    while isinstance(root, ast.Attribute | ast.Subscript | ast.Call):
        if isinstance(root, ast.Attribute):
            first = root.attr
        root = root.func if isinstance(root, ast.Call) else root.value
    if not isinstance(root, ast.Name):
        return None
    if root.id == me:
        return {first} if first else None
    bindings = a.index.reaching(root.id, ctx)
    if not bindings:
        return None
    found: set[str] = set()
    for binding in bindings:
        if binding.value is None or binding.ctx is None:
            return None
        sub = _self_attributes(a, binding.value, me, binding.ctx, depth + 1)
        if sub is None:
            return None
        found |= sub
    return found


def _inherits_from_elsewhere(a: Analysis, cls: ast.ClassDef, depth: int = 0) -> bool:
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id in a.classes and base.id != cls.name:
            if depth < 10 and _inherits_from_elsewhere(a, a.classes[base.id], depth + 1):
                return True
        elif not (isinstance(base, ast.Name) and base.id == "object"):
            return True
    return False
