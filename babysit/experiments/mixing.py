"""Use backprop to chart dependencies (Karpathy): in eval mode, the gradient of one sample's
output with respect to the other samples' inputs must be exactly zero."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from babysit.experiments.batch import follow
from babysit.experiments.context import Context, Skipped


def batch_mixing(ctx: Context) -> dict[str, Any]:
    ctx.require_time()
    n = ctx.batch.size
    if n is None or n < 2:
        raise Skipped("batch mixing needs a batch of at least 2 samples")
    coupled = [
        name
        for name, m in ctx.model.named_modules()
        if isinstance(m, nn.modules.batchnorm._NormBase)
        and not isinstance(m, nn.modules.instancenorm._InstanceNorm)
        and not m.track_running_stats
    ]
    if coupled:
        raise Skipped(
            f"`{coupled[0]}` normalizes with batch statistics even in eval mode "
            "(track_running_stats=False): its outputs couple samples by design"
        )
    k = min(n, 4)
    batch = ctx.batch.take(k)
    model = ctx.copy()
    model.eval()  # BatchNorm must use running statistics: in training mode it couples samples
    source = batch.main_input()
    handles: list[Any] = []
    watched: list[torch.Tensor] = []
    if source is not None and source.is_floating_point():
        leaf = source.detach().clone().requires_grad_(True)
        batch = batch.with_main_input(lambda _: leaf)
        watched.append(leaf)
        probe = "inputs"
    else:
        # Integer inputs (token ids) have no gradient: chart through the first embedding.
        embedding = next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)
        if embedding is None:
            raise Skipped("the inputs are not floating point and the model has no embedding")

        def keep(module: nn.Module, args: Any, output: torch.Tensor) -> None:
            if not watched:
                output.retain_grad()
                watched.append(output)

        handles.append(embedding.register_forward_hook(keep))
        probe = "embedding output"
    try:
        output = model(*batch.args, **batch.kwargs)
    finally:
        for handle in handles:
            handle.remove()
    prediction = _per_sample(ctx, output, k)
    if prediction is None:
        raise Skipped("the model's output has no batch dimension to chart (it returns a loss only)")
    if not prediction.requires_grad or not watched:
        raise Skipped("the output does not depend on a differentiable input")
    leaks = []
    for row in sorted({0, k - 1}):
        for tensor in watched:
            tensor.grad = None
        prediction[row].float().sum().backward(retain_graph=True)
        grad = watched[0].grad
        if grad is None:
            raise Skipped("no gradient reached the inputs")
        grad = grad.detach().reshape(k, -1).abs().amax(dim=1).float()
        own = float(grad[row])
        others = [float(v) for i, v in enumerate(grad.tolist()) if i != row]
        leaks.append({"row": row, "own": own, "others_max": max(others), "others": others})
    return {"samples": k, "through": probe, "rows": leaks}


def _per_sample(ctx: Context, output: Any, k: int) -> torch.Tensor | None:
    candidates = []
    if ctx.loss.path:
        with contextlib.suppress(KeyError, IndexError, AttributeError, RuntimeError, TypeError):
            candidates.append(follow(output, ctx.loss.path))
    candidates.append(output)
    for item in candidates:
        if isinstance(item, dict):
            item = item.get("logits", next(iter(item.values()), None))
        elif isinstance(item, list | tuple):
            item = item[0] if item else None
        elif not isinstance(item, torch.Tensor):
            item = getattr(item, "logits", None)
        if isinstance(item, torch.Tensor) and item.dim() >= 1 and item.shape[0] == k:
            return item
    return None
