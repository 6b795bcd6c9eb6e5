"""One backward pass and one optimizer step on a copy: which parameters learn at all."""

from __future__ import annotations

from typing import Any

import torch

from babysit.experiments.context import Context, Skipped


def gradient_flow(ctx: Context) -> dict[str, Any]:
    ctx.require_time()
    model = ctx.copy()
    batch = ctx.batch.take(max(ctx.settings.tiny_batch, 2))
    loss, _ = ctx.loss.compute(model, batch)
    if not torch.isfinite(loss):
        raise Skipped("the loss on the captured batch is not finite")
    if loss.requires_grad:  # False when every parameter is frozen: nothing to backpropagate
        loss.backward()
    named = list(model.named_parameters())
    frozen = [name for name, p in named if not p.requires_grad]
    trainable = [(name, p) for name, p in named if p.requires_grad]
    no_grad = [name for name, p in trainable if p.grad is None]
    with_grad = [(name, p) for name, p in trainable if p.grad is not None]
    zero_grad: list[str] = []
    if with_grad:
        peaks = torch.stack([p.grad.detach().abs().amax().float() for _, p in with_grad]).cpu()
        zero_grad = [
            name for (name, _), peak in zip(with_grad, peaks.tolist(), strict=True) if peak == 0.0
        ]
    result: dict[str, Any] = {
        "parameters": len(named),
        "frozen": frozen,
        "no_grad": no_grad,
        "zero_grad": zero_grad,
        "loss": float(loss.detach()),
    }
    if ctx.optimizer is not None and trainable:
        listed = ctx.optimizer.names
        result["not_in_optimizer"] = [name for name, _ in trainable if name not in listed]
        optimizer = ctx.optimizer.build(model)
        with torch.no_grad():
            before = [p.detach().clone() for _, p in trainable]
        optimizer.step()
        result["optimizer"] = ctx.optimizer.cls.__name__
        skip = set(no_grad) | set(zero_grad) | set(result["not_in_optimizer"])
        with torch.no_grad():
            result["unchanged_after_step"] = [
                name
                for (name, p), b in zip(trainable, before, strict=True)
                if name not in skip and torch.equal(p, b)
            ]
    return result
