"""Derived per-layer views of a Trace shared by checks and reporters.

The signal chain follows the Linear/convolution layers in the order the first recorded forward
pass called them and relates each layer's output (pre-activation) standard deviation to the
network input's, which is what variance-preserving initialization (Glorot & Bengio 2010;
He et al. 2015) is about.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from babysit.trace import Trace

#: Gains of nn.init.calculate_gain, used for the recommended weight std.
GAINS = {
    "relu": math.sqrt(2.0),
    "leaky_relu": math.sqrt(2.0 / (1 + 0.01**2)),
    "elu": math.sqrt(2.0),
    "gelu": math.sqrt(2.0),
    "silu": math.sqrt(2.0),
    "softplus": math.sqrt(2.0),
    "selu": 3.0 / 4.0,
    "tanh": 5.0 / 3.0,
    "sigmoid": 1.0,
}
XAVIER_FAMILY = ("tanh", "sigmoid")


@dataclass(frozen=True)
class LayerSignal:
    name: str
    type: str
    order: int
    std: float
    in_std: float | None
    relative: float  # output std / network input std
    gain: float | None  # output std / this layer's input std
    weight_std: float | None
    fan_in: int
    fan_out: int
    nonlinearity: str | None
    finite: bool

    @property
    def recommended_std(self) -> float:
        """He (Kaiming) normal for rectifiers, Glorot (Xavier) normal for tanh/sigmoid, and
        LeCun normal (gain 1, fan-in) when no nonlinearity follows."""
        kind = self.nonlinearity
        if kind in XAVIER_FAMILY:
            return GAINS[kind] * math.sqrt(2.0 / (self.fan_in + self.fan_out))
        return GAINS.get(kind or "", 1.0) / math.sqrt(max(self.fan_in, 1))

    @property
    def init_call(self) -> str:
        return self.init_call_for("m.weight")

    def init_call_for(self, weight: str) -> str:
        """The ``nn.init`` line for this layer, applied to the expression ``weight``."""
        kind = self.nonlinearity
        if kind in ("relu", "leaky_relu"):
            return f'nn.init.kaiming_normal_({weight}, nonlinearity="{kind}")'
        if kind in ("gelu", "silu", "elu", "softplus"):
            return f'nn.init.kaiming_normal_({weight}, nonlinearity="relu")'
        if kind == "selu":
            return f'nn.init.kaiming_normal_({weight}, nonlinearity="linear")  # SELU: LeCun'
        if kind in XAVIER_FAMILY:
            return f'nn.init.xavier_normal_({weight}, gain=nn.init.calculate_gain("{kind}"))'
        return f"nn.init.xavier_normal_({weight})"


def first_sample(info: dict[str, Any]) -> dict[str, Any] | None:
    samples = info.get("samples") or []
    return min(samples, key=lambda s: s.get("step", 0)) if samples else None


def signal_chain(trace: Trace) -> list[LayerSignal]:
    """Weight layers with a recorded sample, in forward order, with their signal scale."""
    ordered = [
        (name, info)
        for name, info in sorted(
            ((n, i) for n, i in trace.layers.items() if i.get("order") is not None),
            key=lambda item: item[1]["order"],
        )
    ]
    chain_raw = [
        (name, info, first_sample(info))
        for name, info in ordered
        if "fan_in" in info and first_sample(info) is not None
    ]
    if not chain_raw:
        return []
    base_var = chain_raw[0][2].get("in_var")
    base = math.sqrt(base_var) if base_var else None
    chain: list[LayerSignal] = []
    for index, (name, info, sample) in enumerate(chain_raw):
        std = math.sqrt(max(sample.get("var", 0.0), 0.0))
        in_var = sample.get("in_var")
        in_std = math.sqrt(in_var) if in_var is not None else None
        next_order = chain_raw[index + 1][1]["order"] if index + 1 < len(chain_raw) else None
        kind = _following_activation(ordered, info["order"], next_order)
        if kind is None and index + 1 < len(chain_raw):
            kind = _inferred_rectifier(chain_raw[index + 1][2])
        chain.append(
            LayerSignal(
                name=name,
                type=info.get("type", "?"),
                order=info["order"],
                std=std,
                in_std=in_std,
                relative=std / base if base else math.nan,
                gain=std / in_std if in_std else None,
                weight_std=info.get("weight_std"),
                fan_in=int(info.get("fan_in", 0)),
                fan_out=int(info.get("fan_out", 0)),
                nonlinearity=kind,
                finite=bool(sample.get("finite", True)),
            )
        )
    return chain


def _following_activation(
    ordered: list[tuple[str, dict[str, Any]]], order: int, next_order: int | None
) -> str | None:
    for _, info in ordered:
        o = info["order"]
        if o <= order:
            continue
        if next_order is not None and o >= next_order:
            break
        if info.get("activation"):
            return info["activation"]
    return None


def _inferred_rectifier(next_sample: dict[str, Any]) -> str | None:
    """A functional ReLU (``F.relu``) leaves no module behind, but it leaves zeros: about
    half of the next layer's inputs are exactly zero and none is negative."""
    zeros = next_sample.get("in_zero_frac")
    mean = next_sample.get("in_mean")
    if zeros is not None and zeros > 0.2 and mean is not None and mean > 0:
        return "relu"
    return None
