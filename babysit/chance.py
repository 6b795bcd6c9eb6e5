"""Chance-level loss: what a model that knows nothing about its inputs should score.

For a loss recorded by the loss probe (``trace.losses``), :func:`chance_level` returns

* ``uniform``: the loss of predicting every class equally likely (cross-entropy: ln C; binary
  cross-entropy: ln 2 per output) or of predicting zero (MSE: E[y²]). A freshly initialized
  network with small outputs sits here;
* ``prior``: the loss of the best constant prediction, i.e. the entropy of the label prior
  (cross-entropy, BCE) or the target variance (MSE). A network whose final bias matches the
  class prior sits here.

Karpathy, "A Recipe for Training Neural Networks" (2019), "verify loss @ init"; CS231n:
"expect 2.302 for CIFAR-10 (−ln 0.1)".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Chance:
    kind: str
    uniform: float  # loss of a uniform (or zero) prediction
    prior: float  # loss of the best constant prediction
    description: str
    num_classes: int | None = None
    class_prior: tuple[float, ...] | None = None


def per_example(event: dict[str, Any]) -> float | None:
    """The event's loss per target, undoing ``reduction='sum'``."""
    value = event.get("value")
    if value is None:
        return None
    if event.get("reduction") == "sum":
        n = event.get("num_targets") or 0
        if n <= 0:
            return None
        return value / n
    return value


def chance_level(events: list[dict[str, Any]]) -> Chance | None:
    """Chance level for the kind of the first event, pooling target statistics over all."""
    if not events:
        return None
    first = events[0]
    kind = first.get("kind")
    same = [e for e in events if e.get("kind") == kind]
    if kind in ("cross_entropy", "nll_loss") and first.get("num_classes"):
        c = int(first["num_classes"])
        counts = [0.0] * c
        for event in same:
            for index, value in enumerate(event.get("class_counts") or []):
                if index < c:
                    counts[index] += value
        total = sum(counts)
        if c < 2:
            return None
        prior = tuple(v / total for v in counts) if total > 0 else None
        entropy = -sum(p * math.log(p) for p in prior if p > 0) if prior else math.log(c)
        return Chance(
            kind=kind,
            uniform=math.log(c),
            prior=entropy,
            description=f"ln({c}) = {math.log(c):.3f} for {c} classes",
            num_classes=c,
            class_prior=prior,
        )
    if kind in ("binary_cross_entropy", "binary_cross_entropy_with_logits"):
        entropies = [e["prior_entropy"] for e in same if e.get("prior_entropy") is not None]
        if not entropies:
            return None
        return Chance(
            kind=kind,
            uniform=math.log(2),
            prior=sum(entropies) / len(entropies),
            description=f"ln(2) = {math.log(2):.3f} per binary output",
        )
    if kind == "mse_loss":
        stats = [e for e in same if e.get("target_var") is not None]
        if not stats:
            return None
        second = sum(e["target_second_moment"] for e in stats) / len(stats)
        var = sum(e["target_var"] for e in stats) / len(stats)
        return Chance(
            kind=kind,
            uniform=second,
            prior=var,
            description=f"E[y²] = {second:.4g} (the loss of predicting 0)",
        )
    return None
