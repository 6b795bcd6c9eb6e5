"""Derived views of a real run shared by the live checks and the reporters: the training loss
curve, the validation passes, chance level and per-layer update ratios.

Pure functions of the trace; nothing here touches torch.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from babysit.chance import Chance, chance_level
from babysit.trace import Trace

#: Evaluations reported by a trainer or the user, preferred over captured loss calls only
#: when those are too few to form a curve.
TRAINER_SOURCES = ("lightning", "transformers", "log")


@dataclass(frozen=True)
class Evaluation:
    step: int
    epoch: int | None
    val_loss: float
    train_loss: float | None
    source: str


def training_curve(trace: Trace) -> list[tuple[int, float]]:
    """(step, training loss) for every recorded step that has one, non-finite values kept."""
    return [
        (int(record["step"]), float(record["loss"]))
        for record in trace.steps
        if isinstance(record.get("loss"), int | float)
    ]


def evaluation_source(trace: Trace) -> str | None:
    """The source whose validation passes form the curve.

    Captured loss calls give the most passes and their matching training loss; a trainer's
    logged ``val_loss`` is used when fewer than two passes were captured (a validation loss
    computed without ``torch.nn.functional``)."""
    counts: dict[str, int] = {}
    for entry in trace.evals:
        value = entry.get("val_loss")
        if isinstance(value, int | float) and math.isfinite(value):
            source = str(entry.get("source", "loss"))
            counts[source] = counts.get(source, 0) + 1
    chosen = "loss" if "loss" in counts else None
    if counts.get("loss", 0) < 2:
        for source in TRAINER_SOURCES:
            if counts.get(source, 0) > counts.get(chosen or "", 0):
                chosen = source
    return chosen


def evaluations(trace: Trace) -> list[Evaluation]:
    """The validation passes of one source (:func:`evaluation_source`), in order."""
    source = evaluation_source(trace)
    chosen = [
        entry
        for entry in trace.evals
        if str(entry.get("source", "loss")) == source
        # a diverged run's NaN passes are loss-diverging's business, not a curve
        and isinstance(entry.get("val_loss"), int | float)
        and math.isfinite(entry["val_loss"])
    ]
    result = []
    for entry in chosen:
        train = entry.get("train_loss")
        if not (isinstance(train, int | float) and math.isfinite(train)):
            train = None
        result.append(
            Evaluation(
                step=int(entry.get("step") or 0),
                epoch=entry.get("epoch"),
                val_loss=float(entry["val_loss"]),
                train_loss=None if train is None else float(train),
                source=str(entry.get("source", "loss")),
            )
        )
    if source != "loss":
        _fill_train_losses(trace, result)
    return result


def _fill_train_losses(trace: Trace, evals: list[Evaluation]) -> None:
    """Trainer-reported passes carry no training loss: average the recorded steps between."""
    curve = training_curve(trace)
    previous = -1
    for index, evaluation in enumerate(evals):
        window = [v for s, v in curve if previous < s <= evaluation.step and math.isfinite(v)]
        previous = evaluation.step
        if window and evaluation.train_loss is None:
            evals[index] = Evaluation(
                evaluation.step,
                evaluation.epoch,
                evaluation.val_loss,
                statistics.fmean(window),
                evaluation.source,
            )


def chance_loss(trace: Trace) -> float | None:
    """The loss of the best constant prediction for the training loss, when known."""
    events = trace.training_losses()
    chance = chance_level(events)
    if chance is None or not math.isfinite(chance.prior) or chance.prior <= 0:
        return None
    return _small_sample_corrected(chance, [e for e in events if e.get("kind") == chance.kind])


def _small_sample_corrected(chance: Chance, events: list[dict[str, Any]]) -> float:
    """The prior estimated from the first few batches' targets, corrected for their size.

    A plug-in estimate from n targets is biased low: the label entropy by about (m - 1) / 2n
    nats for m observed classes (Miller 1955; with batches of 2, six labels of ten classes
    look like a prior of 1.6 nats instead of 2.3), a batch's variance by (n - 1) / n (Bessel).
    Below two labels per class the prior is not estimated: ln C, the uniform prediction's loss.
    A too-low chance level would make a healthy run look like it never left it."""
    if chance.class_prior is not None and chance.num_classes:
        n = sum(float(e.get("num_targets") or 0) for e in events)
        if n < 2 * chance.num_classes:
            return chance.uniform  # too few labels to tell the prior from uniform
        seen = sum(1 for p in chance.class_prior if p > 0)
        return min(chance.prior + (seen - 1) / (2 * n), chance.uniform)
    rows = [_rows(e) for e in events if e.get("target_shape")]
    rows = [n for n in rows if n >= 2]
    if not rows:
        return chance.prior
    if chance.kind == "mse_loss":
        return chance.prior * statistics.fmean(n / (n - 1) for n in rows)
    if chance.kind in ("binary_cross_entropy", "binary_cross_entropy_with_logits"):
        return min(chance.prior + statistics.fmean(1 / (2 * n) for n in rows), chance.uniform)
    return chance.prior


def _rows(event: dict[str, Any]) -> int:
    """The samples a batch's per-output target statistics were taken over."""
    shape = [int(d) for d in event["target_shape"]]
    return shape[0] if len(shape) >= 2 else math.prod(shape)


def adversarial(trace: Trace) -> bool:
    """Whether two or more optimizers, stepping in the same stretch of the run, each train a
    different watched model (a GAN's generator and discriminator): their losses pull against
    each other, so neither falls steadily and no held-out loss says how well the run goes.
    Optimizers over one model (parameter groups, one rebuilt every epoch) or one after the
    other (a head trained first, then the whole network) are not adversaries."""
    stepping = [
        o
        for o in trace.facts.get("optimizers") or []
        if o.get("models") and isinstance(o.get("first_step"), int)
    ]
    models: dict[frozenset[int], list[dict[str, Any]]] = {}
    for optimizer in stepping:
        models.setdefault(frozenset(optimizer["models"]), []).append(optimizer)
    if len(models) < 2:
        return False
    seen: set[int] = set()
    for trained in models:
        if seen & trained:
            return False  # optimizers sharing a model: parameter groups, not adversaries
        seen |= trained
    # every model's optimizers still step after the last of them started
    start = max(min(o["first_step"] for o in group) for group in models.values())
    return all(max(o["last_step"] for o in group) > start for group in models.values())


def where(evaluation: Evaluation) -> str:
    """'epoch 4 (step 120)' or 'step 120'."""
    if evaluation.epoch:
        return f"epoch {evaluation.epoch} (step {evaluation.step})"
    return f"step {evaluation.step}"


def update_ratios(trace: Trace, *, skip_first: bool = True) -> dict[str, list[float]]:
    """Per layer, ‖Δw‖/‖w‖ at each sampled step (step 0 left out when later samples exist:
    the first step of Adam, or of any optimizer with warm-up, is not typical)."""
    samples = [g for g in trace.gradients if g.get("layers")]
    if skip_first and len(samples) > 1:
        samples = [g for g in samples if g.get("step", 0) > 0] or samples
    ratios: dict[str, list[float]] = {}
    for sample in samples:
        for name, layer in sample["layers"].items():
            update, weight = layer.get("update_norm"), layer.get("param_norm")
            if not isinstance(update, int | float) or not isinstance(weight, int | float):
                continue
            if weight > 0 and math.isfinite(update) and math.isfinite(weight):
                ratios.setdefault(name, []).append(update / weight)
    return ratios


def layer_order(trace: Trace, names: list[str]) -> list[str]:
    """``names`` in the model's forward order where known, otherwise as given."""
    order = {name: i for i, name in enumerate(trace.layer_order())}
    return sorted(names, key=lambda n: (order.get(n, len(order)), names.index(n)))


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan
