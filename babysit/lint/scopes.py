"""Scopes and reaching assignments: what a variable was assigned from at a given point.

One walk over the tree records, for every node, its parent, its scope (module, class body,
function, lambda, comprehension) and, for statements, the *block path*: the chain of branches
(``if`` body, ``else``, loop body, ``try`` handler, ...) that contains it. An assignment
*dominates* a use when its block path is a prefix of the use's: it runs on every path to the
use. Looking up a name walks the assignments before the use, latest first, and stops at the
first dominating one; the ones passed on the way (assigned in a branch) are possible origins
too. That is flow-sensitive enough for training scripts and never guesses: where an origin
cannot be known (a parameter, a loop target, a tuple unpacked from an unknown call) the lookup
says so, and the rules stay silent.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

Pos = tuple[int, int]
Block = tuple[tuple[int, str], ...]

SCOPE_NODES = (
    ast.Module,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.Lambda,
    ast.ClassDef,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)
FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
LOOP_NODES = (ast.For, ast.AsyncFor, ast.While)
_BRANCH_FIELDS = {
    ast.If: ("body", "orelse"),
    ast.For: ("body", "orelse"),
    ast.AsyncFor: ("body", "orelse"),
    ast.While: ("body", "orelse"),
    ast.Try: ("body", "handlers", "orelse", "finalbody"),
    ast.Match: ("cases",),
}
if hasattr(ast, "TryStar"):  # Python 3.11+
    _BRANCH_FIELDS[ast.TryStar] = ("body", "handlers", "orelse", "finalbody")


def pos(node: ast.AST) -> Pos:
    return (getattr(node, "lineno", 0), getattr(node, "col_offset", 0))


def end_pos(node: ast.AST) -> Pos:
    return (getattr(node, "end_lineno", 0) or 0, getattr(node, "end_col_offset", 0) or 0)


@dataclass
class Scope:
    node: ast.AST
    parent: Scope | None
    bindings: dict[str, list[Binding]] = field(default_factory=dict)

    @property
    def is_class(self) -> bool:
        return isinstance(self.node, ast.ClassDef)

    def bind(self, name: str, binding: Binding) -> None:
        self.bindings.setdefault(name, []).append(binding)


@dataclass(frozen=True)
class Ctx:
    """Where an expression is evaluated: its scope, position and block path."""

    scope: Scope
    pos: Pos
    block: Block


@dataclass(frozen=True)
class Binding:
    """One assignment of a name. ``value`` is ``None`` when the origin is not modelled (a
    parameter, a loop target, an import, ``with ... as``); ``ctx`` is where ``value`` is
    evaluated."""

    at: Pos  # where the binding takes effect (the end of its statement)
    block: Block
    value: ast.expr | None
    ctx: Ctx | None
    kind: str = "assign"  # assign | param | loop | import | def | other


#: A lookup result entry standing for "some origin we cannot see".
UNKNOWN = Binding((0, 0), (), None, None, "unknown")


class ScopeIndex:
    """Parents, scopes and block paths of every node of one module."""

    def __init__(self, tree: ast.Module) -> None:
        self.parent: dict[ast.AST, ast.AST] = {}
        self.scope_of_node: dict[ast.AST, Scope] = {}
        self.block_of_stmt: dict[ast.stmt, Block] = {}
        self.scopes: dict[ast.AST, Scope] = {}
        #: ids of the ``if`` statements that have an ``else``: their two branches cover every path
        self.if_else: set[int] = set()
        #: the depth of the tree (the module is level 1)
        self.depth = 1
        root = Scope(tree, None)
        self.scopes[tree] = root
        self.module_scope = root
        self._walk(tree, root, ())

    # -- building ---------------------------------------------------------------------------
    def _walk(self, node: ast.AST, scope: Scope, block: Block, depth: int = 1) -> None:
        if depth > self.depth:
            self.depth = depth
        branches = _BRANCH_FIELDS.get(type(node), ())
        if isinstance(node, ast.If) and node.orelse:
            self.if_else.add(id(node))
        for name, value in ast.iter_fields(node):
            child_block = (*block, (id(node), name)) if name in branches else block
            children = value if isinstance(value, list) else (value,)
            for child in children:
                if not isinstance(child, ast.AST):
                    continue
                self.parent[child] = node
                child_scope = scope
                if isinstance(child, SCOPE_NODES):
                    self.scope_of_node[child] = scope  # a def belongs to where it is written
                    if isinstance(child, ast.stmt):
                        self.block_of_stmt[child] = child_block
                    child_scope = self._enter(child, scope, child_block)
                    inner_block = () if child_scope is not scope else block
                    self._walk(child, child_scope, inner_block, depth + 1)
                    continue
                self.scope_of_node[child] = scope
                if isinstance(child, ast.stmt):
                    self.block_of_stmt[child] = child_block
                    self._bind_statement(child, scope, child_block)
                elif isinstance(child, ast.NamedExpr) and isinstance(child.target, ast.Name):
                    stmt = self.statement_of(node)
                    block_here = self.block_of_stmt.get(stmt, child_block) if stmt else child_block
                    scope.bind(
                        child.target.id,
                        Binding(end_pos(child), block_here, child.value, self._ctx(child, scope)),
                    )
                self._walk(child, child_scope, child_block, depth + 1)

    def _enter(self, node: ast.AST, outer: Scope, block: Block) -> Scope:
        scope = Scope(node, outer)
        self.scopes[node] = scope
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            outer.bind(node.name, Binding(end_pos(node), block, None, None, "def"))
        if isinstance(node, FUNCTION_NODES):
            args = node.args
            every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
            every += [a for a in (args.vararg, args.kwarg) if a is not None]
            for arg in every:
                scope.bind(arg.arg, Binding(pos(node), (), None, None, "param"))
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            for generator in node.generators:
                for name in _target_names(generator.target):
                    scope.bind(name, Binding(pos(node), (), None, None, "loop"))
        return scope

    def _ctx(self, node: ast.AST, scope: Scope) -> Ctx:
        stmt = node if isinstance(node, ast.stmt) else self.statement_of(node)
        block = self.block_of_stmt.get(stmt, ()) if stmt is not None else ()
        return Ctx(scope, pos(node), block)

    def _bind_statement(self, stmt: ast.stmt, scope: Scope, block: Block) -> None:
        at = end_pos(stmt)
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                self._bind_target(target, stmt.value, scope, block, at)
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            self._bind_target(stmt.target, stmt.value, scope, block, at)
        elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
            # `x += y` is `x = x + y`; the `x` on the right is the one before this statement
            left = ast.copy_location(ast.Name(stmt.target.id, ast.Load()), stmt)
            value = ast.copy_location(ast.BinOp(left, stmt.op, stmt.value), stmt)
            ctx = Ctx(scope, pos(stmt), block)
            scope.bind(stmt.target.id, Binding(at, block, value, ctx))
        elif isinstance(stmt, ast.For | ast.AsyncFor):
            for name in _target_names(stmt.target):
                body_block = (*block, (id(stmt), "body"))
                scope.bind(name, Binding(end_pos(stmt.target), body_block, None, None, "loop"))
        elif isinstance(stmt, ast.With | ast.AsyncWith):
            for item in stmt.items:
                for name in _target_names(item.optional_vars):
                    scope.bind(name, Binding(end_pos(item), block, None, None, "other"))
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            for alias in stmt.names:
                name = alias.asname or alias.name.split(".", 1)[0]
                scope.bind(name, Binding(at, block, None, None, "import"))
        elif isinstance(stmt, ast.Try):
            for handler in stmt.handlers:
                if handler.name:
                    hblock = (*block, (id(stmt), "handlers"))
                    scope.bind(handler.name, Binding(pos(handler), hblock, None, None, "other"))

    def _bind_target(
        self, target: ast.expr, value: ast.expr, scope: Scope, block: Block, at: Pos
    ) -> None:
        ctx = self._ctx(value, scope)
        if isinstance(target, ast.Name):
            scope.bind(target.id, Binding(at, block, value, ctx))
        elif isinstance(target, ast.Tuple | ast.List):
            elements = target.elts
            if isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(elements):
                for element, item in zip(elements, value.elts, strict=True):
                    self._bind_target(element, item, scope, block, at)
                return
            for index, element in enumerate(elements):
                if isinstance(element, ast.Name):
                    # `a, b = f(...)`: a stands for f(...)[0]
                    item = ast.copy_location(
                        ast.Subscript(value, ast.Constant(index), ast.Load()), value
                    )
                    scope.bind(element.id, Binding(at, block, item, ctx))
                else:
                    for name in _target_names(element):
                        scope.bind(name, Binding(at, block, None, None, "other"))

    # -- queries ----------------------------------------------------------------------------
    def statement_of(self, node: ast.AST) -> ast.stmt | None:
        while node is not None and not isinstance(node, ast.stmt):
            node = self.parent.get(node)
        return node

    def ctx_of(self, node: ast.AST) -> Ctx:
        return self._ctx(node, self.scope_of_node.get(node, self.module_scope))

    def reaching(self, name: str, ctx: Ctx) -> list[Binding] | None:
        """The assignments of ``name`` that may reach ``ctx`` (``UNKNOWN`` among them when an
        origin is invisible); ``None`` when the name is bound nowhere (a builtin, a typo)."""
        scope: Scope | None = ctx.scope
        first = True
        while scope is not None:
            if scope.is_class and not first:  # class bodies are not enclosing scopes
                scope = scope.parent
                continue
            bindings = scope.bindings.get(name)
            if bindings:
                if not first:  # an enclosing scope: any of its assignments
                    return list(bindings)
                found: list[Binding] = []
                for binding in reversed(bindings):
                    if binding.at > ctx.pos:
                        continue
                    found.append(binding)
                    if ctx.block[: len(binding.block)] == binding.block:
                        return found
                    if self._covered(found, binding.block, ctx.block):
                        return found  # assigned in both branches of an if/else before the use
                return [*found, UNKNOWN]
            first = False
            scope = scope.parent
        return None

    def _covered(self, found: list[Binding], block: Block, use: Block) -> bool:
        """An ``if``/``else`` enclosing ``block``, before ``use`` and on its path, assigns on
        every path through it among the bindings ``found`` (``elif`` chains included)."""
        blocks = {b.block for b in found}
        for depth in range(len(block)):
            node_id = block[depth][0]
            inside = len(use) > depth and use[depth][0] == node_id
            if use[:depth] != block[:depth] or inside or node_id not in self.if_else:
                continue
            if self._every_path_assigns(blocks, block[:depth], node_id):
                return True
        return False

    def _every_path_assigns(self, blocks: set[Block], prefix: Block, node_id: int) -> bool:
        return all(
            self._branch_assigns(blocks, (*prefix, (node_id, part))) for part in ("body", "orelse")
        )

    def _branch_assigns(self, blocks: set[Block], branch: Block) -> bool:
        """Every path through ``branch`` assigns: directly in it, or in both arms of an
        ``if``/``else`` in it."""
        if branch in blocks:
            return True
        n = len(branch)
        nested = {b[n][0] for b in blocks if len(b) > n and b[:n] == branch}
        return any(self._every_path_assigns(blocks, branch, i) for i in nested if i in self.if_else)


def _target_names(target: ast.AST | None) -> list[str]:
    if target is None:
        return []
    return [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
