"""Verified fixes: apply a finding's suggested fix to a copy and measure again.

Advice becomes evidence: the finding can say "with Kaiming init the activation std at the last
hidden layer goes from 1e-9 to 0.8 and the tiny batch is overfit in 12 steps instead of never".
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from babysit import registry
from babysit.experiments.batch import Batch
from babysit.experiments.context import Context, Skipped
from babysit.experiments.overfit import _tiny, train_tiny
from babysit.layerstats import LayerSignal, signal_chain
from babysit.probes.inputs import feature_dim, first_weight_layer_is_conv
from babysit.trace import Trace


def verified_fixes(ctx: Context) -> dict[str, Any]:
    ctx.require_time()
    results: dict[str, Any] = {}
    loud = {
        name
        for name in ("activation-variance-unstable", "init-scheme-mismatch", "unnormalized-inputs")
        if _fires(ctx.trace, name)
    }
    if loud & {"activation-variance-unstable", "init-scheme-mismatch"}:
        result = _verify_init(ctx)
        for name in loud & {"activation-variance-unstable", "init-scheme-mismatch"}:
            results[name] = result
    if "unnormalized-inputs" in loud:
        results["unnormalized-inputs"] = _verify_normalization(ctx)
    if not results:
        raise Skipped("no init or normalization finding to verify")
    return results


def _fires(trace: Trace, name: str) -> bool:
    try:
        check = registry.get(name)()
    except Exception:
        return False
    if check.missing_requirements(trace):
        return False
    return any(f.severity.rank >= 1 for f in check.judge(trace))


def apply_recommended_init(model: nn.Module, chain: list[LayerSignal]) -> None:
    """Kaiming/Xavier for every hidden layer by the nonlinearity after it; a small output
    layer so that the first predictions are close to uniform."""
    with torch.no_grad():
        for index, layer in enumerate(chain):
            module = model.get_submodule(layer.name)
            if index == len(chain) - 1:
                nn.init.normal_(module.weight, std=0.01)
            elif layer.nonlinearity in ("relu", "leaky_relu", "gelu", "silu", "elu", "softplus"):
                mode = "leaky_relu" if layer.nonlinearity == "leaky_relu" else "relu"
                nn.init.kaiming_normal_(module.weight, nonlinearity=mode)
            elif layer.nonlinearity in ("tanh", "sigmoid"):
                gain = nn.init.calculate_gain(layer.nonlinearity)
                nn.init.xavier_normal_(module.weight, gain=gain)
            elif layer.nonlinearity == "selu":
                nn.init.kaiming_normal_(module.weight, nonlinearity="linear")
            else:
                nn.init.xavier_normal_(module.weight)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)


def _verify_init(ctx: Context) -> dict[str, Any]:
    chain = signal_chain(ctx.trace)
    if len(chain) < 2:
        raise Skipped("fewer than two Linear/conv layers were recorded")
    fixed = ctx.copy(dropout=False)
    apply_recommended_init(fixed, chain)
    after_chain = measure_chain(fixed, ctx.batch, ctx)
    before = {"deepest_hidden_relative_std": chain[-2].relative}
    after = {
        "deepest_hidden_relative_std": after_chain[-2].relative
        if len(after_chain) > 1
        else math.nan
    }
    _add_overfit(ctx, fixed, ctx.batch, before, after)
    return {
        "fix": "recommended init per layer (Kaiming/Xavier; small output layer)",
        "before": before,
        "after": after,
    }


def _verify_normalization(ctx: Context) -> dict[str, Any]:
    source = ctx.batch.main_input()
    if source is None or not source.is_floating_point():
        raise Skipped("the main input is not floating point")
    dim = feature_dim(source, first_weight_layer_is_conv(ctx.model))
    with torch.no_grad():
        if dim is None:
            mean, std = source.mean(), source.std()
        else:
            dims = [d for d in range(source.dim()) if d != dim]
            mean = source.mean(dim=dims, keepdim=True)
            std = source.std(dim=dims, keepdim=True)
        normalized = (source - mean) / std.clamp_min(1e-8)
    batch = ctx.batch.with_main_input(lambda _: normalized)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    _add_overfit(ctx, ctx.copy(dropout=False), batch, before, after)
    return {"fix": "inputs standardized per feature/channel", "before": before, "after": after}


def _add_overfit(
    ctx: Context, model: nn.Module, batch: Batch, before: dict[str, Any], after: dict[str, Any]
) -> None:
    """Steps to overfit the tiny batch, before (from the overfit experiment) and after."""
    baseline = ctx.trace.experiments.get("overfit") or {}
    if "steps" not in baseline or ctx.time_left() <= 0:
        return
    tiny = _tiny(
        Context(ctx.model, batch, ctx.loss, ctx.trace, ctx.optimizer, ctx.settings, ctx.started)
    )
    run = train_tiny(ctx, model, tiny, weight_decay=0.0, decoupled=False, lr=baseline.get("lr"))
    before["initial_loss"] = baseline.get("initial_loss")
    before["overfit_steps"] = baseline["steps"] if baseline.get("reached") else None
    before["overfit_final_loss"] = baseline.get("final_loss")
    after["initial_loss"] = run["initial_loss"]
    after["overfit_steps"] = run["steps"] if run["reached"] else None
    after["overfit_final_loss"] = run["final_loss"]


def measure_chain(model: nn.Module, batch: Batch, ctx: Context) -> list[LayerSignal]:
    """The signal chain of ``model`` on ``batch``, recorded by the same probes as a check."""
    from babysit.session import Session

    trace = Trace(mode="experiment")
    session = Session(trace, sample_every=1, max_input_batches=1)
    session.add_model(model)
    try:
        with torch.enable_grad():
            model(*batch.args, **batch.kwargs)
    finally:
        session.close()
    return signal_chain(trace)
