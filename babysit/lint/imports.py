"""Import alias resolution: which fully qualified name an expression such as ``F.softmax``,
``nn.CrossEntropyLoss`` or ``CE`` stands for."""

from __future__ import annotations

import ast
from collections.abc import Iterable

# Public names re-exported from private modules: `torch.nn.modules.loss.CrossEntropyLoss` is
# `torch.nn.CrossEntropyLoss` to every rule.
_CANONICAL_PREFIXES = (
    ("torch.nn.modules.loss.", "torch.nn."),
    ("torch.nn.modules.activation.", "torch.nn."),
    ("torch.nn.modules.container.", "torch.nn."),
    ("torch.nn.modules.", "torch.nn."),
    ("torch.utils.data.dataloader.", "torch.utils.data."),
    ("torch.utils.data.dataset.", "torch.utils.data."),
    ("torch.autograd.grad_mode.", "torch."),
    ("torch.autograd.", "torch."),
    ("pytorch_lightning.", "lightning."),
    ("lightning.pytorch.", "lightning."),
)


class ImportMap:
    """Local name -> qualified name, from every import in a module (flow-insensitive: a name
    imported inside a function is visible to the whole file, which is what scripts mean)."""

    def __init__(self, aliases: dict[str, str]) -> None:
        self.aliases = aliases

    @classmethod
    def of(cls, nodes: Iterable[ast.AST]) -> ImportMap:
        """From the import statements among ``nodes`` (e.g. ``ast.walk(tree)``)."""
        aliases: dict[str, str] = {}
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        aliases[alias.asname] = alias.name
                    else:  # `import torch.nn` binds `torch`
                        head = alias.name.split(".", 1)[0]
                        aliases[head] = head
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    if alias.name != "*":
                        aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        return cls(aliases)

    def qualname(self, expr: ast.AST) -> str | None:
        """``torch.nn.functional.softmax`` for ``F.softmax`` when ``F`` is an import alias;
        ``None`` for anything not rooted in an import."""
        parts: list[str] = []
        while isinstance(expr, ast.Attribute):
            parts.append(expr.attr)
            expr = expr.value
        if not isinstance(expr, ast.Name) or expr.id not in self.aliases:
            return None
        parts.append(self.aliases[expr.id])
        return canonical(".".join(reversed(parts)))


def canonical(name: str) -> str:
    for prefix, replacement in _CANONICAL_PREFIXES:
        if name.startswith(prefix):
            return replacement + name[len(prefix) :]
    return name
