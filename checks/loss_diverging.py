from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from babysit.chance import chance_level
from babysit.check import Check, Finding, Severity
from babysit.curves import adversarial, layer_order, training_curve
from babysit.trace import Trace


class LossDiverging(Check):
    """The training loss became NaN/Inf, or rose far above where it started.

    ## What it does
    Reads the training loss of every recorded step. Fires when the loss is non-finite (at
    least `min_nonfinite_steps` steps, or the last one), or when the median loss of the last
    `window` steps is more than `rise_factor` times the loss of the first recorded step (the
    loss at init), or (classification losses) above its start and more than
    `above_uniform_factor` times the loss of a uniform prediction (ln C for C classes, ln 2
    per binary output): the model now predicts worse than guessing.
    The finding names the first layer whose gradients or activations were non-finite at a
    sampled step, and the layer with the largest update ratio before that.

    ## Why is this bad?
    A diverging loss means the optimizer overshoots: the learning rate is too high for this
    model and initialization, or a numerically unsafe operation (log of 0, division by a
    small number, softmax followed by log, fp16 overflow) produces infinities. Once a NaN
    reaches the weights, every later step is wasted.

    ## Example
    ```python
    optimizer = torch.optim.SGD(model.parameters(), lr=5.0)   # far too high
    ```

    ## Fix
    Lower the learning rate (by 10× as a first try), add warm-up and gradient clipping, and
    use the numerically stable losses (`cross_entropy` on logits, `BCEWithLogitsLoss`):
    ```python
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)  # before optimizer.step()
    ```

    ## Thresholds
    * `rise_factor` = 3.0: a healthy loss starts at chance level and falls; noise on a
      mini-batch loss is ±30 % or so. Three times the starting loss is well outside noise
      and what SGD with a 10–100× too large learning rate produces within the first epoch on
      the bundled examples.
    * `above_uniform_factor` = 1.25: a classifier that learns nothing sits at or below the
      uniform prediction's loss; one pushed above it by its own updates makes confident wrong
      predictions. A 10× too-high learning rate (SGD 0.5 with momentum on a 10-class MLP)
      ends at 1.4× ln 10 while staying below 3× its start; clean runs end far below it.
      Only for mean-reduced classification losses (ln C is a fixed reference there, while a
      regression's chance level comes from a few batches' targets), and not for adversarial
      runs (a GAN), whose losses pull against each other.
    * `window` = 10 steps: medians over 10 steps ignore single-batch spikes.
    * `min_nonfinite_steps` = 2: a GradScaler (mixed precision) may see one overflow and skip
      that step; a model with NaN weights stays NaN.

    ## References
    * CS231n, "Neural Networks Part 3" (babysitting: "loss exploding → learning rate too high").
    * Karpathy, "A Recipe for Training Neural Networks" (2019).
    * smdebug rule `LossNotDecreasing`/`ExplodingTensor`.
    """

    id = "BS403"
    name = "loss-diverging"
    severity = Severity.ERROR
    summary = "the training loss became NaN/Inf or rose far above its start"
    requires = ("steps",)
    implied_by = ("gradients-not-reset",)
    thresholds = {
        "rise_factor": 3.0,
        "above_uniform_factor": 1.25,
        "window": 10,
        "min_nonfinite_steps": 2,
    }

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        curve = training_curve(trace)
        if not curve:
            return
        nonfinite = [(s, v) for s, v in curve if not math.isfinite(v)]
        window = int(thresholds["window"])
        finite = [(s, v) for s, v in curve if math.isfinite(v)]
        # the loss at init: a median over the first steps would already include an
        # explosion that happens at step 1
        start = finite[0][1] if finite else None
        lr = _lr_at(trace, nonfinite[0][0] if nonfinite else curve[-1][0])
        if nonfinite and (
            len(nonfinite) >= thresholds["min_nonfinite_steps"] or nonfinite[-1] == curve[-1]
        ):
            first_step = nonfinite[0][0]
            before = [v for s, v in finite if s < first_step]
            culprit = _first_nonfinite_layer(trace)
            hot = _largest_update(trace, before_step=first_step)
            parts = [
                f"the training loss became {_kind(nonfinite[0][1])} at step {first_step}"
                + (f" (last finite value {before[-1]:.4g}, start {start:.4g})" if before else "")
                + f"; {len(nonfinite)} of {len(curve)} recorded steps are non-finite."
            ]
            if culprit:
                parts.append(
                    f"The first non-finite {culprit[1]} was in layer `{culprit[0]}` at step "
                    f"{culprit[2]}."
                )
            if hot:
                parts.append(
                    f"Before that, `{hot[0]}` had the largest update ratio ‖Δw‖/‖w‖ = "
                    f"{hot[1]:.3g} per step (healthy ≈ 1e-3)."
                )
            yield self.finding(
                " ".join(parts),
                _fix(lr),
                evidence={
                    "first_nonfinite_step": first_step,
                    "nonfinite_steps": len(nonfinite),
                    "start_loss": start,
                    "last_finite_loss": before[-1] if before else None,
                    "lr": lr,
                    "first_nonfinite_layer": culprit[0] if culprit else None,
                },
                layer=culprit[0] if culprit else (hot[0] if hot else None),
            )
            return
        if len(finite) < 2 * window or start is None or start <= 0:
            return
        end = statistics.median(v for _, v in finite[-window:])
        uniform = _uniform_loss(trace)
        worse_than_guessing = (
            uniform is not None
            and end > start
            and end > thresholds["above_uniform_factor"] * uniform
        )
        if end <= thresholds["rise_factor"] * start and not worse_than_guessing:
            return
        peak_step, peak = max(finite, key=lambda item: item[1])
        hot = _largest_update(trace)
        yield self.finding(
            f"the training loss rose from {start:.4g} (at step {finite[0][0]}) to "
            f"{end:.4g} (median of the last {window}), {end / start:.3g}× its start"
            + (
                f", {end / uniform:.3g}× the loss of a uniform prediction ({uniform:.4g})"
                if uniform
                else ""
            )
            + f"; it peaked at {peak:.4g} at step {peak_step}."
            + (
                f" `{hot[0]}` had the largest update ratio ‖Δw‖/‖w‖ = {hot[1]:.3g} per step "
                "(healthy ≈ 1e-3)."
                if hot
                else ""
            ),
            _fix(lr),
            evidence={
                "start_loss": start,
                "end_loss": end,
                "peak_loss": peak,
                "peak_step": peak_step,
                "uniform_loss": uniform,
                "lr": lr,
            },
            layer=hot[0] if hot else None,
        )


def _uniform_loss(trace: Trace) -> float | None:
    """ln C (or ln 2 per binary output) for a mean-reduced classification loss, else None."""
    events = trace.training_losses()
    if not events or events[0].get("reduction", "mean") != "mean" or adversarial(trace):
        return None
    chance = chance_level(events)
    if chance is None or chance.kind not in CLASSIFICATION:
        return None
    return chance.uniform


CLASSIFICATION = (
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
)


def _kind(value: float) -> str:
    return "NaN" if math.isnan(value) else "infinite"


def _fix(lr: float | None) -> str:
    lower = f"lr={lr / 10:.2g}" if lr else "a 10× lower learning rate"
    return (
        f"Lower the learning rate ({lower} as a first try), and clip gradients:"
        "\n```python\n"
        "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)  # before step()"
        "\n```\n"
        "Compute losses from logits (`F.cross_entropy`, `BCEWithLogitsLoss`), never "
        "log(softmax) by hand; under fp16 use `torch.autocast` with a `GradScaler`."
    )


def _lr_at(trace: Trace, step: int) -> float | None:
    lr = None
    for record in trace.steps:
        if record.get("step", 0) > step:
            break
        if isinstance(record.get("lr"), int | float):
            lr = float(record["lr"])
    if lr is None:
        for optimizer in trace.facts.get("optimizers", []):
            groups = optimizer.get("param_groups") or [{}]
            value = groups[0].get("lr") if isinstance(groups[0], dict) else None
            if isinstance(value, int | float):
                return float(value)
    return lr


def _first_nonfinite_layer(trace: Trace) -> tuple[str, str, int] | None:
    """(layer, 'gradient' | 'activation', step) at the earliest sampled step with one."""
    found: list[tuple[int, int, str, str]] = []
    for sample in trace.gradients:
        names = layer_order(trace, list(sample.get("layers", {})))
        for rank, name in enumerate(names):
            layer = sample["layers"][name]
            if not all(math.isfinite(layer.get(k, 0.0)) for k in ("grad_norm", "param_norm")):
                found.append((sample["step"], rank, name, "gradient"))
                break
    order = trace.layer_order()
    for rank, name in enumerate(order):
        for sample in trace.layers.get(name, {}).get("samples", []):
            values = [v for v in sample.values() if isinstance(v, float)]
            if any(not math.isfinite(v) for v in values):
                found.append((sample.get("step", 0), rank, name, "activation"))
                break
    if not found:
        return None
    step, _, name, what = min(found, key=lambda item: (item[0], item[3] != "activation", item[1]))
    return name, what, step


def _largest_update(trace: Trace, before_step: int | None = None) -> tuple[str, float] | None:
    best: tuple[str, float] | None = None
    for sample in trace.gradients:
        if before_step is not None and sample.get("step", 0) >= before_step:
            continue
        for name, layer in sample.get("layers", {}).items():
            update, weight = layer.get("update_norm"), layer.get("param_norm")
            if not isinstance(update, float) or not isinstance(weight, float) or weight <= 0:
                continue
            ratio = update / weight
            if math.isfinite(ratio) and (best is None or ratio > best[1]):
                best = (name, ratio)
    return best
