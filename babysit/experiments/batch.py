"""What an experiment needs to train a copy: a batch it can slice, and the user's loss."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch.utils._pytree import tree_map

from babysit.probes.inputs import pick_input
from babysit.probes.losses import LossCall

Path = tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class Batch:
    """Model inputs (positional and keyword) and, when the loss needs them, targets."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    targets: Any = None

    @property
    def size(self) -> int | None:
        picked = pick_input(self.args, self.kwargs)
        if picked is None or picked[1].dim() == 0:
            return None
        return int(picked[1].shape[0])

    def take(self, k: int) -> Batch:
        """The first ``k`` samples. Tensors whose first dimension is a multiple of the batch
        size (targets flattened from ``(N, T)`` to ``(N*T,)``) keep ``k`` times that multiple."""
        n = self.size
        if n is None or k >= n:
            return self

        def cut(value: Any) -> Any:
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                rows = int(value.shape[0])
                if rows == n:
                    return value[:k]
                if rows % n == 0:
                    return value[: k * (rows // n)]
            return value

        return Batch(
            tree_map(cut, self.args), tree_map(cut, self.kwargs), tree_map(cut, self.targets)
        )

    def map_floats(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
        """The batch with ``fn`` applied to every floating-point tensor (inputs and targets)."""

        def apply(value: Any) -> Any:
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                return fn(value)
            return value

        return Batch(
            tree_map(apply, self.args), tree_map(apply, self.kwargs), tree_map(apply, self.targets)
        )

    def with_main_input(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
        """The batch with its main input (first tensor argument) replaced by ``fn(input)``."""
        picked = pick_input(self.args, self.kwargs)
        if picked is None:
            return self
        name, tensor = picked
        if name.startswith("args["):
            index = int(name[5:-1])
            args = list(self.args)
            args[index] = fn(tensor)
            return replace(self, args=tuple(args))
        return replace(self, kwargs={**self.kwargs, name: fn(tensor)})

    def main_input(self) -> torch.Tensor | None:
        picked = pick_input(self.args, self.kwargs)
        return picked[1] if picked else None


@dataclass(frozen=True)
class LossSpec:
    """How to get the user's loss (and the loss input, for accuracy) from a model and a batch."""

    kind: str  # the loss kind as the loss probe names it; "model_output" when the model returns it
    loss_fn: Callable[..., Any] | None = None
    path: Path | None = ()  # from the model output to the loss input

    def compute(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, Any]:
        output = model(*batch.args, **batch.kwargs)
        if self.loss_fn is None:
            return model_loss(output), None
        prediction = follow(output, self.path or ())
        if batch.targets is None:
            return self.loss_fn(prediction), prediction
        return self.loss_fn(prediction, batch.targets), prediction


def model_loss(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor) and output.numel() == 1:
        return output.reshape(())
    loss = output.get("loss") if isinstance(output, Mapping) else getattr(output, "loss", None)
    if not isinstance(loss, torch.Tensor):
        raise TypeError("the model's output is neither a scalar loss nor carries .loss")
    return loss


def follow(output: Any, path: Path) -> Any:
    for step in path:
        if step[0] == "key":
            output = output[step[1]]
        elif step[0] == "attr":
            output = getattr(output, step[1])
        elif step[0] == "reshape":
            output = output.reshape(step[1])
    return output


def match_output(output: Any, prediction: torch.Tensor) -> Path | None:
    """How ``prediction`` (the loss input) was obtained from ``output`` (the model output)."""
    candidates: list[tuple[Path, torch.Tensor]] = []
    if isinstance(output, torch.Tensor):
        candidates.append(((), output))
    elif isinstance(output, Mapping):
        candidates += [((("key", k),), v) for k, v in output.items() if isinstance(v, torch.Tensor)]
    elif isinstance(output, list | tuple):
        candidates += [
            ((("key", i),), v) for i, v in enumerate(output) if isinstance(v, torch.Tensor)
        ]
    else:
        logits = getattr(output, "logits", None)
        if isinstance(logits, torch.Tensor):
            candidates.append(((("attr", "logits"),), logits))
    for path, tensor in candidates:
        if tensor is prediction:
            return path
    for path, tensor in candidates:
        if _same_storage(tensor, prediction) and tensor.numel() == prediction.numel():
            return (*path, ("reshape", (-1, *prediction.shape[1:])))
    return None


def _same_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    base_a = a._base if a._base is not None else a
    base_b = b._base if b._base is not None else b
    return base_a is base_b


def loss_from_call(call: LossCall) -> LossSpec | None:
    if call.output_path is None:
        return None
    return LossSpec(kind=call.kind, loss_fn=call, path=call.output_path)
