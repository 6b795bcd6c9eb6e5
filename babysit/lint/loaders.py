"""DataLoader constructions and their role (training or evaluation), shared by the loader
rules."""

from __future__ import annotations

import ast
from dataclasses import dataclass

from babysit.lint import torchapi as api
from babysit.lint.analysis import Analysis, terminal_name
from babysit.lint.loops import backward_calls, iterated


@dataclass(frozen=True)
class LoaderUse:
    call: ast.Call
    name: str | None  # the variable, attribute, dict key or factory function it is bound to
    trained_on: bool  # a loop that runs backward() iterates it
    evaluated_on: bool  # a loop without backward() iterates it

    @property
    def role(self) -> str | None:
        if self.trained_on or (self.name and api.says_train(self.name)):
            return "train" if not (self.name and api.says_eval(self.name)) else None
        if self.name and api.says_eval(self.name):
            return "eval"
        return None


def loader_uses(a: Analysis) -> list[LoaderUse]:
    key = ("loaders", 0)
    if key in a._memo:
        return a._memo[key]  # type: ignore[return-value]
    constructions = [c for c in a.calls if a.qualname(c.func) in api.DATALOADERS]
    trained: set[int] = set()
    evaluated: set[int] = set()
    if constructions:
        ids = {id(c) for c in constructions}
        for loop in a.loops:
            sink = trained if backward_calls(a, loop) else evaluated
            for expr in iterated(loop):
                for leaf, _ in a.origins(expr) or ():
                    if id(leaf) in ids:
                        sink.add(id(leaf))
    uses = [
        LoaderUse(call, bound_name(a, call), id(call) in trained, id(call) in evaluated)
        for call in constructions
    ]
    a._memo[key] = uses
    return uses


def bound_name(a: Analysis, call: ast.Call) -> str | None:
    """``train_loader`` for ``train_loader = DataLoader(...)``; the key for
    ``{"train": DataLoader(...)}``; the function name for ``return DataLoader(...)``."""
    parent = a.parent(call)
    if isinstance(parent, ast.Assign) and len(parent.targets) == 1:
        return terminal_name(parent.targets[0])
    if isinstance(parent, ast.AnnAssign | ast.NamedExpr):
        return terminal_name(parent.target)
    if isinstance(parent, ast.keyword):
        return parent.arg
    if isinstance(parent, ast.Dict):
        for key, value in zip(parent.keys, parent.values, strict=True):
            if value is call and isinstance(key, ast.Constant) and isinstance(key.value, str):
                return key.value
    if isinstance(parent, ast.Return):
        function = a.enclosing_function(call)
        return function.name if function else None
    return None


def is_map_style(a: Analysis, dataset: ast.expr | None) -> bool:
    """The dataset supports random access (so it can be shuffled): a TensorDataset, a
    torchvision data set, a ``random_split`` part, or a class of this file with
    ``__getitem__`` that is not an IterableDataset."""
    if dataset is None:
        return False
    leaves = a.origins(dataset)
    return bool(leaves) and all(_map_style_leaf(a, leaf) for leaf, _ in leaves)


def _map_style_leaf(a: Analysis, leaf: ast.expr, depth: int = 0) -> bool:
    if isinstance(leaf, ast.Subscript) and depth < 3:
        parts = a.origins(leaf.value)
        return bool(parts) and all(
            isinstance(p, ast.Call) and a.qualname(p.func) == api.RANDOM_SPLIT for p, _ in parts
        )
    if not isinstance(leaf, ast.Call):
        return False
    name = a.qualname(leaf.func)
    if name in api.MAP_DATASETS or (name or "").startswith("torchvision.datasets."):
        return True
    if isinstance(leaf.func, ast.Name) and leaf.func.id in a.classes:
        cls = a.classes[leaf.func.id]
        iterable = any("Iterable" in ast.unparse(b) for b in cls.bases)
        return not iterable and a.method(cls, "__getitem__") is not None
    return False


def has_splat(call: ast.Call) -> bool:
    """``DataLoader(ds, **kwargs)``: any option may be hiding in there."""
    return any(k.arg is None for k in call.keywords) or any(
        isinstance(arg, ast.Starred) for arg in call.args
    )
