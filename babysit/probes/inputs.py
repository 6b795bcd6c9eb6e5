"""Statistics of the model's input batches (the first few sampled training forwards).

Per feature (tabular, ``(N, F)``) or per channel (images and signals, ``(N, C, ...)``), the
probe computes mean and standard deviation on the device with a two-pass formula (inputs with
large offsets, such as raw "income" columns, would lose all precision in E[x²] − E[x]²) and
reduces them to a fixed set of summary numbers, plus the per-feature vectors for small inputs so
that findings can name the offending columns.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from babysit.probes.recorder import Recorder

#: Per-feature vectors are stored only up to this many features.
MAX_FEATURE_VECTORS = 64
SUMMARY_KEYS = (
    "min",
    "max",
    "mean",
    "std",
    "integer_valued",
    "nonfinite_frac",
    "feature_std_max",
    "feature_std_min",
    "feature_std_median",
    "feature_absmean_max",
    "feature_offset_median",
    "constant_features",
)


def feature_dim(x: torch.Tensor, channels_first: bool) -> int | None:
    """Which dimension indexes features: channels for conv inputs, the last dim otherwise."""
    if x.dim() <= 1:
        return None
    if x.dim() == 2:
        return 1
    return 1 if channels_first else x.dim() - 1


def pick_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, torch.Tensor] | None:
    """The first tensor among the positional, then keyword, arguments (the main input)."""
    for index, value in enumerate(args):
        if isinstance(value, torch.Tensor):
            return f"args[{index}]", value
    for key, value in kwargs.items():
        if isinstance(value, torch.Tensor):
            return key, value
    return None


def first_weight_layer_is_conv(model: nn.Module) -> bool:
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return True
        if isinstance(module, nn.Linear | nn.Embedding | nn.RNNBase | nn.MultiheadAttention):
            return False
    return False


class InputProbe:
    name = "inputs"

    def __init__(self, recorder: Recorder, model: nn.Module, max_batches: int = 4) -> None:
        self.recorder = recorder
        self.max_batches = max_batches
        self.seen = 0
        self.channels_first = first_weight_layer_is_conv(model)

    def observe(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.seen >= self.max_batches:
            return
        picked = pick_input(args, kwargs)
        if picked is None:
            return
        argument, x = picked
        self.seen += 1
        entry: dict[str, Any] = {
            "step": self.recorder.step,
            "argument": argument,
            "shape": list(x.shape),
            "dtype": str(x.dtype).replace("torch.", ""),
        }
        self.recorder.trace.inputs.append(entry)
        if not x.is_floating_point() or x.numel() == 0 or x.dim() == 0:
            entry["floating"] = False
            return
        entry["floating"] = True
        dim = feature_dim(x, self.channels_first)
        x = x.detach()
        with torch.no_grad():
            summary, mean_f, std_f = _summarize(x, dim)
        entry["feature_dim"] = dim
        num_features = mean_f.numel()
        entry["num_features"] = num_features
        vectors = num_features <= MAX_FEATURE_VECTORS and dim is not None
        payload = torch.cat([summary, mean_f, std_f]) if vectors else summary

        def store(values: list[float]) -> None:
            head = values[: len(SUMMARY_KEYS)]
            entry.update(zip(SUMMARY_KEYS, head, strict=True))
            entry["integer_valued"] = bool(entry["integer_valued"])
            if vectors:
                tail = values[len(SUMMARY_KEYS) :]
                entry["feature_mean"] = tail[:num_features]
                entry["feature_std"] = tail[num_features:]

        self.recorder.defer(payload, store)


def _summarize(x: torch.Tensor, dim: int | None) -> tuple[torch.Tensor, ...]:
    x = x.float()
    finite = torch.isfinite(x)
    nonfinite_frac = 1.0 - finite.float().mean()
    x = torch.where(finite, x, torch.zeros((), dtype=x.dtype, device=x.device))
    flat = x.reshape(1, -1) if dim is None else x.movedim(dim, 0).reshape(x.shape[dim], -1)
    mean_f = flat.mean(dim=1)
    std_f = (flat - mean_f[:, None]).square().mean(dim=1).sqrt()
    mean = x.mean()
    std = (x - mean).square().mean().sqrt()
    tiny = 1e-8 * torch.clamp(std, min=1e-12)
    varying = std_f > tiny
    big = torch.full_like(std_f, float("inf"))
    # NaN marks constant features so that nanmedian skips them without a host sync.
    offset = torch.where(varying, mean_f.abs() / std_f, torch.full_like(std_f, float("nan")))
    summary = torch.stack(
        [
            x.min(),
            x.max(),
            mean,
            std,
            (x == x.round()).all().float(),
            nonfinite_frac,
            std_f.max(),
            torch.where(varying, std_f, big).min(),
            std_f.median(),
            mean_f.abs().max(),
            offset.nanmedian(),
            (~varying).sum().float(),
        ]
    )
    return summary, mean_f, std_f
