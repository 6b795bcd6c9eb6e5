"""Overfit a tiny batch: regularization off (it must reach ~0), then on (it must end higher).

The babysitting checklist: "Turn off regularization. You should predictably overfit and get a
loss of 0. Turn on regularization. The loss should be higher than before." Both runs use Adam,
which needs no learning-rate tuning for this (Karpathy: "Adam is safe"), on the first
``tiny_batch`` samples of the captured batch, with BatchNorm left in training mode.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import nn

from babysit.experiments.batch import Batch
from babysit.experiments.context import Context, Skipped
from babysit.probes.model_facts import BATCHNORM, DROPOUT

CURVE_STEPS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500)
#: Steps without a 1 % improvement after which a tiny-batch run has plateaued.
PATIENCE = 40


def overfit_tiny_batch(ctx: Context) -> dict[str, Any]:
    """Regularization off; then, on the trained copy, the same batch with zeroed inputs."""
    tiny = _tiny(ctx)
    model = ctx.copy(dropout=False)
    result = train_tiny(ctx, model, tiny, weight_decay=0.0, decoupled=False)
    if result.get("diverged"):
        model = ctx.copy(dropout=False)
        result = train_tiny(
            ctx, model, tiny, weight_decay=0.0, decoupled=False, lr=ctx.settings.lr / 10
        )
    result["samples"] = tiny.size
    result["regularization"] = "off"
    if isinstance(tiny.targets, torch.Tensor) and tiny.targets.numel() > 0:
        result["constant_targets"] = bool((tiny.targets == tiny.targets.reshape(-1)[0]).all())
    # Karpathy's input-independent baseline: with the inputs zeroed the model must do worse.
    with torch.no_grad():
        zeroed = tiny.with_main_input(torch.zeros_like)
        zero_loss, _ = ctx.loss.compute(model, zeroed)
    result["zero_input_loss"] = float(zero_loss)
    return result


def overfit_regularized(ctx: Context) -> dict[str, Any]:
    """The user's dropout and weight decay on: the final loss should be higher."""
    model = ctx.copy()
    dropout = [
        {"name": name, "p": float(m.p)}
        for name, m in model.named_modules()
        if isinstance(m, DROPOUT)
    ]
    weight_decay = ctx.optimizer.weight_decay if ctx.optimizer else 0.0
    decoupled = bool(ctx.optimizer and ctx.optimizer.decoupled)
    present = {
        "dropout": dropout,
        "active_dropout": [d for d in dropout if d["p"] > 0],
        "weight_decay": weight_decay,
        "optimizer": ctx.optimizer.cls.__name__ if ctx.optimizer else None,
        "decoupled_weight_decay": decoupled,
    }
    if not present["active_dropout"]:
        # Weight decay at usual strengths barely moves a short tiny-batch run, so the run
        # would judge nothing; the facts above are enough for the configuration findings.
        reason = "no dropout to switch on" if weight_decay else "no regularization to switch on"
        return {"present": present, "skipped_run": reason}
    off = ctx.trace.experiments.get("overfit") or {}
    steps = off.get("steps") or ctx.settings.overfit_steps
    ran = _count_dropout_calls(model)
    result = train_tiny(
        ctx,
        model,
        _tiny(ctx),
        weight_decay=weight_decay,
        decoupled=decoupled,
        steps=steps,
        stop_early=False,
        lr=off.get("lr", ctx.settings.lr),
    )
    result["dropout_calls"] = ran()
    result["present"] = present
    result["regularization"] = "on"
    return result


def train_tiny(
    ctx: Context,
    model: nn.Module,
    tiny: Batch,
    *,
    weight_decay: float,
    decoupled: bool,
    lr: float | None = None,
    steps: int | None = None,
    stop_early: bool = True,
) -> dict[str, Any]:
    settings = ctx.settings
    lr = lr or settings.lr
    steps = steps or settings.overfit_steps
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise Skipped("the model has no trainable parameters")
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    optimizer = cls(params, lr=lr, weight_decay=weight_decay)
    losses: list[float] = []
    accuracy = None
    reached = diverged = truncated = plateaued = False
    taken = 0
    started = time.monotonic()
    # A model that cannot learn must not spend the whole protocol budget: at most half of
    # what is left, and stop once the loss has not improved by 1 % over PATIENCE steps.
    deadline = started + max(ctx.time_left(), 0.0) * 0.5
    for step in range(steps + 1):
        if time.monotonic() > deadline or ctx.time_left() <= 0:
            truncated = True
            break
        if (
            stop_early
            and step > PATIENCE
            and min(losses[-PATIENCE:]) > 0.99 * min(losses[:-PATIENCE])
        ):
            plateaued = True
            break
        optimizer.zero_grad(set_to_none=True)
        loss, prediction = ctx.loss.compute(model, tiny)
        value = float(loss.detach())  # one sync per step: this loop must decide when to stop
        losses.append(value)
        if not math.isfinite(value) or (step >= 5 and value > 10 * max(losses[0], 1e-8)):
            diverged = True
            break
        if stop_early and value <= settings.overfit_target * losses[0]:
            accuracy = _accuracy(ctx, prediction, tiny)
            if accuracy is None or accuracy >= 1.0:
                reached = True
                break
        if step == steps:
            break
        loss.backward()
        optimizer.step()
        taken += 1
    if accuracy is None and losses and not diverged:
        with torch.no_grad():
            _, prediction = ctx.loss.compute(model, tiny)
        accuracy = _accuracy(ctx, prediction, tiny)
    result: dict[str, Any] = {
        "loop_seconds": round(time.monotonic() - started, 3),
        "initial_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "best_loss": min(losses) if losses else None,
        "steps": taken,
        "max_steps": steps,
        "reached": reached,
        "diverged": diverged,
        "truncated": truncated,
        "lr": lr,
        "accuracy": accuracy,
        "curve": {str(s): losses[s] for s in CURVE_STEPS if s < len(losses)},
        "plateaued": plateaued,
        "outputs_are_probabilities": _looks_like_probabilities(prediction) if losses else False,
    }
    return result


def _tiny(ctx: Context) -> Batch:
    n = ctx.batch.size
    if n is None:
        raise Skipped("no batch dimension could be found in the model's inputs")
    k = min(ctx.settings.tiny_batch, n)
    has_bn = any(isinstance(m, BATCHNORM) for m in ctx.model.modules())
    if has_bn and k < 2:
        raise Skipped("the captured batch has a single sample and the model uses BatchNorm")
    return ctx.batch.take(k)


def _accuracy(ctx: Context, prediction: Any, tiny: Batch) -> float | None:
    target = tiny.targets
    if not isinstance(prediction, torch.Tensor) or not isinstance(target, torch.Tensor):
        return None
    kind = ctx.loss.kind
    with torch.no_grad():
        if kind in ("cross_entropy", "nll_loss") and prediction.dim() >= 1:
            predicted = prediction.argmax(dim=1 if prediction.dim() > 1 else 0)
            if target.is_floating_point():
                target = target.argmax(dim=1 if target.dim() > 1 else 0)
            valid = target != -100
            hits = (predicted == target) & valid
            return float(hits.sum()) / max(float(valid.sum()), 1.0)
        if kind == "binary_cross_entropy_with_logits":
            return float(((prediction > 0) == (target > 0.5)).float().mean())
        if kind == "binary_cross_entropy":
            return float(((prediction > 0.5) == (target > 0.5)).float().mean())
    return None


def _looks_like_probabilities(prediction: Any) -> bool:
    if not isinstance(prediction, torch.Tensor) or prediction.dim() < 2:
        return False
    with torch.no_grad():
        p = prediction.detach().float()
        in_range = bool(((p >= 0) & (p <= 1)).all())
        sums = p.sum(dim=1)
        return in_range and bool(torch.allclose(sums, torch.ones_like(sums), atol=1e-3))


def _count_dropout_calls(model: nn.Module):
    """Count calls of dropout modules during the regularized run (are they used at all?)."""
    calls = [0]

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        calls[0] += 1

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, DROPOUT)]

    def done() -> int:
        for handle in handles:
            handle.remove()
        return calls[0]

    return done
