"""Reading the verified-fix experiment back into a finding: "with the fix, X went from a to b"."""

from __future__ import annotations

import math
from typing import Any

from babysit.trace import Trace

_LABELS = {
    "deepest_hidden_relative_std": "activation std at the deepest hidden layer (× input std)",
    "initial_loss": "loss at init",
    "overfit_steps": "Adam steps to overfit the tiny batch",
    "overfit_final_loss": "tiny-batch loss after the overfit run",
}


def verified_fix(trace: Trace, check_name: str) -> tuple[str, dict[str, Any]]:
    """A sentence for the message and the evidence entry; empty when nothing was verified."""
    result = (trace.experiments.get("verified_fixes") or {}).get(check_name)
    if not isinstance(result, dict) or "before" not in result:
        return "", {}
    before, after = result["before"], result["after"]
    parts = []
    for key, label in _LABELS.items():
        if key in before or key in after:
            parts.append(f"{label} {_fmt(before.get(key))} → {_fmt(after.get(key))}")
    if not parts:
        return "", {}
    sentence = f" Verified on a copy with the fix ({result['fix']}): " + "; ".join(parts) + "."
    return sentence, {"verified_fix": {"fix": result["fix"], "before": before, "after": after}}


def _fmt(value: Any) -> str:
    if value is None:
        return "never"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3g}"
    return str(value)
