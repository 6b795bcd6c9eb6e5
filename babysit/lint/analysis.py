"""The analysis of one source file that every static rule shares.

:func:`analyze` parses a file (cached by path and text hash) and returns an :class:`Analysis`:
import aliases, scopes and reaching assignments, the file's functions, classes, loops and
calls, and recognizers for the PyTorch objects the rules talk about (optimizers, loss objects,
models, softmax/sigmoid outputs, ``no_grad`` regions, Lightning modules). Each recognizer
answers ``None``/``False`` when it cannot be sure, so the rules built on it stay silent.
"""

from __future__ import annotations

import ast
import bisect
from collections.abc import Iterator
from functools import cached_property

from babysit.lint import torchapi as api
from babysit.lint.imports import ImportMap
from babysit.lint.parse import ParseError, gc_paused, parse, remember, source_lines, text_key
from babysit.lint.scopes import FUNCTION_NODES, LOOP_NODES, Ctx, ScopeIndex, end_pos, pos

Origin = tuple[ast.expr, Ctx]
FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef
MAX_DEPTH = 10
#: Deeper trees (generated code: a chain of a thousand method calls, a sum of a thousand
#: terms) are not analyzed: the walks and ``ast.unparse`` recurse once or more per level.
MAX_NESTING = 200
_OWNERS = (*FUNCTION_NODES, ast.ClassDef)

_ANALYSES: dict[tuple[str, str], Analysis | ParseError] = {}


def analyze(path: str, text: str) -> Analysis | ParseError:
    """The cached analysis of ``text`` (read from ``path``), or why it cannot be parsed."""
    key = text_key(path, text)
    hit = _ANALYSES.get(key)
    if hit is None:
        tree = parse(path, text)
        hit = tree if isinstance(tree, ParseError) else _analysis(path, text, tree)
        remember(_ANALYSES, key, hit)
    return hit


def _analysis(path: str, text: str, tree: ast.Module) -> Analysis | ParseError:
    try:
        with gc_paused():
            index = ScopeIndex(tree)
            if index.depth > MAX_NESTING:
                return ParseError(
                    f"too deeply nested to analyze ({index.depth} levels of syntax; the limit "
                    f"is {MAX_NESTING})"
                )
            return Analysis(path, text, tree, index)
    except RecursionError:
        return ParseError("too deeply nested to analyze (the recursion limit was reached)")


class Analysis:
    def __init__(
        self, path: str, text: str, tree: ast.Module, index: ScopeIndex | None = None
    ) -> None:
        self.path = path
        self.text = text
        self.tree = tree
        self.lines = source_lines(text)
        self.index = index or ScopeIndex(tree)
        self.functions: dict[str, list[FunctionNode]] = {}
        self.classes: dict[str, ast.ClassDef] = {}
        self.loops: list[ast.For | ast.AsyncFor | ast.While] = []
        self.calls: list[ast.Call] = []
        self.assignments: list[ast.Assign | ast.AugAssign | ast.AnnAssign] = []
        #: the function, lambda or class whose body holds each node (the module at top level)
        self.owner: dict[ast.AST, ast.AST] = {}
        imports: list[ast.Import | ast.ImportFrom] = []
        parents = self.index.parent
        owner = self.owner
        # one pass over the nodes the scope walk already visited, in source (pre)order
        for node, parent in parents.items():
            owner[node] = parent if isinstance(parent, _OWNERS) else owner.get(parent, tree)
            if isinstance(node, ast.Call):
                self.calls.append(node)
            elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
                self.assignments.append(node)
            elif isinstance(node, LOOP_NODES):
                self.loops.append(node)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self.functions.setdefault(node.name, []).append(node)
            elif isinstance(node, ast.ClassDef):
                self.classes.setdefault(node.name, node)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                imports.append(node)
        self.imports = ImportMap.of(imports)
        self.loops.sort(key=pos)
        self.calls.sort(key=pos)
        self.assignments.sort(key=pos)
        self._call_starts = [pos(c) for c in self.calls]
        self._assignment_starts = [pos(a) for a in self.assignments]
        self._memo: dict[tuple[str, int], object] = {}

    # -- nodes under a subtree, by position (binary search instead of a walk) ----------------
    def calls_under(self, root: ast.AST, *, into_functions: bool = True) -> list[ast.Call]:
        """The calls inside ``root``, in source order (optionally only those of ``root``'s
        own body, not of functions or classes defined in it)."""
        return self._under(root, self.calls, self._call_starts, into_functions)

    def assignments_under(
        self, root: ast.AST, *, into_functions: bool = True
    ) -> list[ast.Assign | ast.AugAssign | ast.AnnAssign]:
        return self._under(root, self.assignments, self._assignment_starts, into_functions)

    def _under(self, root: ast.AST, nodes: list, starts: list, into_functions: bool) -> list:
        if root is self.tree:
            found = list(nodes)
        else:
            # source ranges nest like the tree: inside the range is inside the subtree
            lo = bisect.bisect_left(starts, pos(root))
            hi = bisect.bisect_left(starts, end_pos(root))
            found = nodes[lo:hi]
        if into_functions:
            return found
        home = root if isinstance(root, _OWNERS) else self.owner.get(root, self.tree)
        return [n for n in found if self.owner.get(n) is home]

    # -- positions and structure ------------------------------------------------------------
    def location(self, node: ast.AST) -> tuple[int, int]:
        """1-based line and column (in characters, as editors count) of ``node``."""
        line, offset = pos(node)
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        if not text.isascii():
            offset = len(text.encode("utf-8")[:offset].decode("utf-8", "ignore"))
        return line, offset + 1

    def where(self, node: ast.AST) -> dict[str, str | int]:
        """``file``/``line``/``column`` keywords for :meth:`Check.finding`."""
        line, column = self.location(node)
        return {"file": self.path, "line": line, "column": column}

    def parent(self, node: ast.AST) -> ast.AST | None:
        return self.index.parent.get(node)

    def ancestors(self, node: ast.AST) -> Iterator[ast.AST]:
        node = self.index.parent.get(node)
        while node is not None:
            yield node
            node = self.index.parent.get(node)

    def enclosing_function(self, node: ast.AST) -> FunctionNode | None:
        for ancestor in self.ancestors(node):
            if isinstance(ancestor, ast.FunctionDef | ast.AsyncFunctionDef):
                return ancestor
        return None

    def enclosing_class(self, node: ast.AST) -> ast.ClassDef | None:
        for ancestor in self.ancestors(node):
            if isinstance(ancestor, ast.ClassDef):
                return ancestor
        return None

    def scope_root(self, node: ast.AST) -> ast.AST:
        """The function containing ``node``, or the module."""
        return self.enclosing_function(node) or self.tree

    def ctx(self, node: ast.AST) -> Ctx:
        return self.index.ctx_of(node)

    def qualname(self, expr: ast.AST) -> str | None:
        return self.imports.qualname(expr)

    def unparse(self, node: ast.AST) -> str:
        return ast.unparse(node)

    # -- data flow --------------------------------------------------------------------------
    def origins(
        self, expr: ast.expr, ctx: Ctx | None = None, depth: int = 0
    ) -> list[Origin] | None:
        """The expressions ``expr`` may stand for, following assignments of names and of
        ``self.attr``; ``None`` when any origin is unknown (a parameter, a loop variable)."""
        if ctx is None:
            ctx = self.ctx(expr)
        if depth > MAX_DEPTH:
            return None
        if isinstance(expr, ast.NamedExpr):
            return self.origins(expr.value, ctx, depth + 1)
        if isinstance(expr, ast.Name):
            bindings = self.index.reaching(expr.id, ctx)
            if bindings is None:
                return [(expr, ctx)]  # a builtin or a name defined elsewhere
            return self._follow(bindings, expr, ctx, depth)
        cls = self._self_class(expr, ctx)
        if cls is not None:
            bindings = self.class_attribute(cls, expr.attr)  # type: ignore[attr-defined]
            return self._follow(bindings, expr, ctx, depth) if bindings else None
        return [(expr, ctx)]

    def _follow(self, bindings, expr: ast.expr, ctx: Ctx, depth: int) -> list[Origin] | None:
        result: list[Origin] = []
        for binding in bindings:
            if binding.kind in ("import", "def"):
                result.append((expr, ctx))
                continue
            if binding.value is None or binding.ctx is None:
                return None
            sub = self.origins(binding.value, binding.ctx, depth + 1)
            if sub is None:
                return None
            result.extend(sub)
        return result

    def _self_class(self, expr: ast.expr, ctx: Ctx) -> ast.ClassDef | None:
        """The class of ``self`` when ``expr`` is ``self.attr`` inside one of its methods."""
        if not (isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name)):
            return None
        method = ctx.scope.node
        if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef) or not method.args.args:
            return None
        if method.args.args[0].arg != expr.value.id:
            return None
        owner = self.parent(method)
        return owner if isinstance(owner, ast.ClassDef) else None

    def class_attribute(self, cls: ast.ClassDef, attr: str) -> list:
        """Every ``self.attr = value`` in the methods of ``cls`` (and its bases in this file)."""
        table = self._class_attributes(cls)
        found = list(table.get(attr, ()))
        for base in cls.bases:
            if isinstance(base, ast.Name) and base.id in self.classes and base.id != cls.name:
                found += self._class_attributes(self.classes[base.id]).get(attr, [])
        return found

    def _class_attributes(self, cls: ast.ClassDef) -> dict[str, list]:
        key = ("attrs", id(cls))
        if key not in self._memo:
            from babysit.lint.scopes import Binding, end_pos

            table: dict[str, list] = {}
            for method in cls.body:
                if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                if not method.args.args:
                    continue
                me = method.args.args[0].arg
                for node in ast.walk(method):
                    targets: list[ast.expr] = []
                    if isinstance(node, ast.Assign):
                        targets, value = node.targets, node.value
                    elif isinstance(node, ast.AnnAssign) and node.value is not None:
                        targets, value = [node.target], node.value
                    for target in targets:
                        if (
                            isinstance(target, ast.Attribute)
                            and isinstance(target.value, ast.Name)
                            and target.value.id == me
                        ):
                            binding = Binding(end_pos(node), (), value, self.ctx(value))
                            table.setdefault(target.attr, []).append(binding)
            self._memo[key] = table
        return self._memo[key]  # type: ignore[return-value]

    def all_origins_are(self, expr: ast.expr, predicate, ctx: Ctx | None = None) -> bool:
        leaves = self.origins(expr, ctx)
        return bool(leaves) and all(predicate(leaf, leaf_ctx) for leaf, leaf_ctx in leaves)

    # -- activations (softmax / log_softmax / sigmoid outputs) -------------------------------
    def activation(
        self, expr: ast.expr, ctx: Ctx | None = None, depth: int = 0
    ) -> tuple[str, ast.AST] | None:
        """(``softmax`` | ``log_softmax`` | ``sigmoid``, the producing node) when every origin
        of ``expr`` is that activation's output."""
        if depth > MAX_DEPTH:
            return None
        leaves = self.origins(expr, ctx, depth)
        if not leaves:
            return None
        kinds: set[str] = set()
        producer: ast.AST | None = None
        for leaf, leaf_ctx in leaves:
            found = self._activation_leaf(leaf, leaf_ctx, depth + 1)
            if found is None:
                return None
            kinds.add(found[0])
            producer = producer or found[1]
        if len(kinds) != 1 or producer is None:
            return None
        return kinds.pop(), producer

    def _activation_leaf(self, leaf: ast.expr, ctx: Ctx, depth: int) -> tuple[str, ast.AST] | None:
        if isinstance(leaf, ast.Subscript):  # probs[:, 1]
            return self.activation(leaf.value, ctx, depth + 1)
        if not isinstance(leaf, ast.Call):
            return None
        func = leaf.func
        name = self.qualname(func)
        if name in api.ACTIVATION_FUNCTIONS:
            return api.ACTIVATION_FUNCTIONS[name], leaf
        if isinstance(func, ast.Attribute) and name is None:
            if func.attr in api.ACTIVATION_METHODS:
                return api.ACTIVATION_METHODS[func.attr], leaf
            if func.attr in api.SHAPE_METHODS:
                return self.activation(func.value, ctx, depth + 1)
        if name is not None:
            return None
        kind = self.module_output(func, ctx, depth + 1)
        return (kind, leaf) if kind else None

    def module_output(self, func: ast.expr, ctx: Ctx, depth: int = 0) -> str | None:
        """The activation a called module ends with: an ``nn.Softmax``/``nn.Sigmoid``, an
        ``nn.Sequential`` whose last layer is one, or a model of this file whose ``forward``
        returns one (``self(x)`` inside its methods)."""
        if depth > MAX_DEPTH:
            return None
        if isinstance(func, ast.Name) and func.id == "self":
            method = ctx.scope.node
            owner = self.parent(method) if isinstance(method, FUNCTION_NODES) else None
            if isinstance(owner, ast.ClassDef):
                return self.forward_activation(owner, depth + 1)
            return None
        leaves = self.origins(func, ctx, depth)
        if not leaves:
            return None
        kinds = {self._constructed_activation(leaf, depth + 1) for leaf, _ in leaves}
        if len(kinds) == 1:
            return kinds.pop()
        return None

    def _constructed_activation(self, leaf: ast.expr, depth: int) -> str | None:
        if not isinstance(leaf, ast.Call) or depth > MAX_DEPTH:
            return None
        name = self.qualname(leaf.func)
        if name in api.ACTIVATION_MODULES:
            return api.ACTIVATION_MODULES[name]
        if name == "torch.nn.Sequential":
            if leaf.args and not isinstance(leaf.args[-1], ast.Starred):
                return self._constructed_activation(leaf.args[-1], depth + 1)
            return None
        if isinstance(leaf.func, ast.Name) and leaf.func.id in self.classes:
            return self.forward_activation(self.classes[leaf.func.id], depth + 1)
        return None

    def forward_activation(self, cls: ast.ClassDef, depth: int = 0) -> str | None:
        """The activation every ``return`` of ``cls.forward`` ends with, if one."""
        key = ("forward", id(cls))
        if key in self._memo:
            return self._memo[key]  # type: ignore[return-value]
        self._memo[key] = None  # recursion guard
        forward = self.method(cls, "forward")
        kind = None
        if forward is not None and depth <= MAX_DEPTH:
            returns = [r for r in self.own_nodes(forward) if isinstance(r, ast.Return)]
            kinds = set()
            for ret in returns:
                found = self.activation(ret.value, None, depth + 1) if ret.value else None
                kinds.add(found[0] if found else None)
            if len(kinds) == 1:
                kind = kinds.pop()
        self._memo[key] = kind
        return kind

    def method(self, cls: ast.ClassDef, name: str) -> FunctionNode | None:
        for node in cls.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
                return node
        for base in cls.bases:
            if isinstance(base, ast.Name) and base.id in self.classes and base.id != cls.name:
                found = self.method(self.classes[base.id], name)
                if found is not None:
                    return found
        return None

    # -- losses -------------------------------------------------------------------------------
    def loss_kind(self, call: ast.Call) -> str | None:
        """``cross_entropy`` | ``nll`` | ``bce`` | ``bce_logits`` | ``other`` when ``call``
        computes a loss with ``torch.nn.functional`` or a ``torch.nn`` loss object."""
        name = self.qualname(call.func)
        kind = api.functional_loss_kind(name)
        if kind or name is not None:
            return kind
        leaves = self.origins(call.func)
        if not leaves:
            return None
        kinds = {
            api.loss_module_kind(self.qualname(leaf.func)) if isinstance(leaf, ast.Call) else None
            for leaf, _ in leaves
        }
        return kinds.pop() if len(kinds) == 1 else None

    @staticmethod
    def argument(call: ast.Call, index: int, keyword: str) -> ast.expr | None:
        for kw in call.keywords:
            if kw.arg == keyword:
                return kw.value
        if 0 <= index < len(call.args) and not any(
            isinstance(a, ast.Starred) for a in call.args[: index + 1]
        ):
            return call.args[index]
        return None

    # -- optimizers, models -------------------------------------------------------------------
    def is_optimizer(self, expr: ast.expr) -> bool:
        leaves = self.origins(expr)
        if leaves and all(
            isinstance(leaf, ast.Call) and api.is_optimizer_class(self.qualname(leaf.func))
            for leaf, _ in leaves
        ):
            return True
        name = terminal_name(expr)
        return name is not None and api.says_optimizer(name)

    def is_grad_scaler(self, expr: ast.expr) -> bool:
        leaves = self.origins(expr)
        if leaves and all(
            isinstance(leaf, ast.Call) and self.qualname(leaf.func) in api.GRAD_SCALERS
            for leaf, _ in leaves
        ):
            return True
        name = terminal_name(expr)
        return name is not None and "scaler" in api.word_tokens(name)

    def stepped_optimizer(self, call: ast.Call) -> ast.expr | None:
        """The optimizer that ``call`` steps (``opt.step()``, ``scaler.step(opt)``), if any."""
        func = call.func
        if not (isinstance(func, ast.Attribute) and func.attr == "step"):
            return None
        if self.is_grad_scaler(func.value):
            return call.args[0] if call.args else None
        return func.value if self.is_optimizer(func.value) else None

    def is_model_call(self, call: ast.Call) -> bool:
        """``call`` runs a model's forward pass (``model(x)``, ``self.net(x)``)."""
        func = call.func
        if isinstance(func, ast.Name) and func.id == "self":
            return False
        name = terminal_name(func)
        if name is None or self.qualname(func) is not None:
            return False  # an imported function or class: a library call, not the model
        leaves = self.origins(func)
        if leaves:
            verdicts = {self._constructs_model(leaf) for leaf, _ in leaves}
            if verdicts == {True}:
                return True
            if False in verdicts:
                return False
        return api.says_model(name)

    def _constructs_model(self, leaf: ast.expr) -> bool | None:
        if not isinstance(leaf, ast.Call):
            return None
        if isinstance(leaf.func, ast.Name) and leaf.func.id in self.classes:
            return self.is_module_class(self.classes[leaf.func.id])
        name = self.qualname(leaf.func)
        if name is None:
            return None
        if api.loss_module_kind(name) or name in api.ACTIVATION_MODULES:
            return False
        if name.startswith(("torchvision.models.", "timm.", "transformers.")):
            return True
        if name.startswith("torch.nn.") and name[len("torch.nn.") :][:1].isupper():
            return True
        if name in ("torch.load", "torch.jit.load", "torch.compile", "copy.deepcopy"):
            return None
        return False

    def is_module_class(self, cls: ast.ClassDef, seen: frozenset[str] = frozenset()) -> bool:
        for base in cls.bases:
            text = ast.unparse(base)
            if text.endswith(("Module", "LightningModule", "Sequential", "PreTrainedModel")):
                return True
            local = isinstance(base, ast.Name) and base.id in self.classes
            if (
                local
                and base.id not in seen
                and self.is_module_class(self.classes[base.id], seen | {cls.name})
            ):
                return True
        return False

    def is_lightning_module(self, cls: ast.ClassDef | None) -> bool:
        """A LightningModule (by base class, or by the shape: a ``training_step`` method)."""
        if cls is None:
            return False
        if self.method(cls, "training_step") is not None:
            return True
        return any(ast.unparse(b).endswith("LightningModule") for b in cls.bases)

    # -- no_grad regions --------------------------------------------------------------------
    def is_no_grad_manager(self, expr: ast.expr) -> bool:
        """``torch.no_grad()``, ``torch.inference_mode()``, ``torch.set_grad_enabled(False)``
        (also as decorators, with or without the call parentheses)."""
        call = expr if isinstance(expr, ast.Call) else None
        name = self.qualname(call.func if call else expr)
        if name in api.NO_GRAD:
            if call and call.args and isinstance(call.args[0], ast.Constant):
                return bool(call.args[0].value)  # inference_mode(False)
            return True
        if name == api.SET_GRAD_ENABLED and call and call.args:
            flag = call.args[0]
            return isinstance(flag, ast.Constant) and flag.value is False
        return False

    def in_no_grad(self, node: ast.AST) -> bool:
        """``node`` runs under ``no_grad``: inside such a ``with`` block of its function, or in
        a function (or an enclosing one) decorated with it."""
        for ancestor in self.ancestors(node):
            if isinstance(ancestor, ast.With | ast.AsyncWith):
                managers = [item.context_expr for item in ancestor.items]
            elif isinstance(ancestor, ast.FunctionDef | ast.AsyncFunctionDef):
                managers = ancestor.decorator_list
            else:
                continue
            if any(self.is_no_grad_manager(m) for m in managers):
                return True
        return False

    # -- functions and calls ----------------------------------------------------------------
    def own_nodes(self, root: ast.AST) -> Iterator[ast.AST]:
        """The nodes of ``root``'s body, not descending into nested functions or classes."""
        stack = list(ast.iter_child_nodes(root))
        while stack:
            node = stack.pop()
            yield node
            if not isinstance(node, (*FUNCTION_NODES, ast.ClassDef)):
                stack.extend(ast.iter_child_nodes(node))

    def called_functions(self, call: ast.Call) -> list[FunctionNode]:
        """The functions of this file ``call`` may run: ``helper(...)`` by name, and
        ``self.method(...)`` in the caller's class."""
        func = call.func
        if isinstance(func, ast.Name):
            return list(self.functions.get(func.id, ()))
        is_self = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
        if is_self and func.value.id in ("self", "cls"):  # type: ignore[union-attr]
            cls = self.enclosing_class(call)
            found = self.method(cls, func.attr) if cls else None  # type: ignore[union-attr]
            return [found] if found else []
        return []

    def call_sites(self, function: FunctionNode) -> list[ast.Call]:
        """Calls in this file that may run ``function``."""
        owner = self.parent(function)
        sites = []
        for call in self.calls:
            func = call.func
            if isinstance(owner, ast.ClassDef):
                if isinstance(func, ast.Attribute) and func.attr == function.name:
                    sites.append(call)
            elif isinstance(func, ast.Name) and func.id == function.name:
                sites.append(call)
        return sites

    def is_parameter(self, name: str, function: FunctionNode | None) -> bool:
        if function is None:
            return False
        args = function.args
        return name in {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}

    @cached_property
    def optimizer_constructions(self) -> list[ast.Call]:
        return [c for c in self.calls if api.is_optimizer_class(self.qualname(c.func))]


def terminal_name(expr: ast.AST) -> str | None:
    """``optimizer`` for ``self.optimizer``, ``optimizers[0]`` or ``optimizer``."""
    while isinstance(expr, ast.Subscript):
        expr = expr.value
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        return expr.attr
    return None


def calls_in(root: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(root):
        if isinstance(node, ast.Call):
            yield node


def method_call(call: ast.AST, *names: str) -> bool:
    """``call`` is ``something.name(...)`` for one of ``names``."""
    return (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr in names
    )
