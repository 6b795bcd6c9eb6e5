"""Per-layer activation statistics on sampled training forwards.

For each leaf module the hook reduces the output (and, for Linear/conv layers, the input) to a
handful of scalars on the tensor's device: E[x], E[x²] (through ``vector_norm``, which is several
times cheaper than ``var``) and, where it means something, the fraction of exact zeros. The
scalars wait in the Recorder until the step is flushed. Nothing is kept alive after the hook.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from babysit.probes.model_facts import activation_kind, is_weight_layer
from babysit.probes.recorder import Recorder

MAX_SAMPLES_PER_LAYER = 256


def first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, list | tuple):
        for item in value:
            found = first_tensor(item)
            if found is not None:
                return found
    if isinstance(value, dict):
        for item in value.values():
            found = first_tensor(item)
            if found is not None:
                return found
    return None


#: |pre-activation| at or above which tanh/sigmoid count as saturated (DeepDiagnosis).
SATURATION_LEVEL = 5.0


def unit_dim(x: torch.Tensor) -> int:
    """The dimension that indexes units: channels for conv maps, features otherwise."""
    return 1 if x.dim() in (2, 4, 5) else x.dim() - 1


def dead_fraction(x: torch.Tensor) -> torch.Tensor:
    """Fraction of units never positive anywhere in the batch (and feature map)."""
    d = unit_dim(x)
    active = (x > 0).movedim(d, 0).reshape(x.shape[d], -1).any(dim=1)
    return 1.0 - active.to(torch.float32).mean()


def _moments(x: torch.Tensor, zeros: bool) -> list[torch.Tensor]:
    n = max(x.numel(), 1)
    mean = x.mean(dtype=torch.float32)
    second = torch.linalg.vector_norm(x, dtype=torch.float32).square() / n
    parts = [mean, second]
    if zeros:
        parts.append((x == 0).sum(dtype=torch.float32) / n)
    return parts


class ActivationProbe:
    """Forward hooks on the leaves of one model; active only while the model records."""

    name = "activations"

    def __init__(self, recorder: Recorder, model: nn.Module) -> None:
        self.recorder = recorder
        self.model = model
        self.recording = False
        self._order = 0
        self._seen: set[int] = set()
        self._ordered_once = False
        self.handles: list[torch.utils.hooks.RemovableHandle] = []
        for name, module in model.named_modules():
            if any(True for _ in module.children()):
                continue
            if not name:
                continue
            info = recorder.trace.layers.setdefault(name, {"type": type(module).__name__})
            kind = activation_kind(module)
            if kind:
                info["activation"] = kind
            hook = recorder.guard(self.name, self._make_hook(name, module, kind, info))
            self.handles.append(module.register_forward_hook(hook))

    def begin(self) -> None:
        self.recording = True
        self._order = 0
        self._seen.clear()

    def end(self) -> None:
        if self.recording:
            self._ordered_once = True
        self.recording = False

    def _make_hook(self, name: str, module: nn.Module, kind: str | None, info: dict[str, Any]):
        weight_layer = is_weight_layer(module)
        rectifier = kind in ("relu", "leaky_relu")
        saturating = kind in ("tanh", "sigmoid")
        key = id(module)

        def hook(mod: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if not self.recording or key in self._seen:
                return
            self._seen.add(key)
            if not self._ordered_once:
                info.setdefault("order", self._order)
            self._order += 1
            out = first_tensor(output)
            if out is None or not out.is_floating_point():
                return
            out = out.detach()
            parts = _moments(out, zeros=rectifier)
            units = int(out.shape[unit_dim(out)]) if out.dim() >= 2 else 0
            per_unit = out.numel() // units if units else 0
            if rectifier and units:
                parts.append(dead_fraction(out))
            pre = first_tensor(args) if saturating else None
            has_pre = pre is not None and pre.is_floating_point()
            if has_pre:
                level = (pre.detach().abs() >= SATURATION_LEVEL).sum(dtype=torch.float32)
                parts.append(level / max(pre.numel(), 1))
            source = first_tensor(args) if weight_layer else None
            has_input = source is not None and source.is_floating_point()
            if has_input:
                parts.extend(_moments(source.detach(), zeros=True))
            step = self.recorder.step
            numel = out.numel()

            def store(values: list[float]) -> None:
                mean, second = values[0], values[1]
                sample: dict[str, Any] = {
                    "step": step,
                    "numel": numel,
                    "mean": mean,
                    "var": max(second - mean * mean, 0.0),
                    "finite": _finite(mean, second),
                }
                rest = values[2:]
                if rectifier:
                    sample["zero_frac"], rest = rest[0], rest[1:]
                    if units:
                        sample["dead_frac"], rest = rest[0], rest[1:]
                        sample["samples_per_unit"] = per_unit
                if has_pre:
                    sample["saturated_frac"], rest = rest[0], rest[1:]
                if has_input:
                    in_mean, in_second, in_zero = rest
                    sample["in_mean"] = in_mean
                    sample["in_var"] = max(in_second - in_mean * in_mean, 0.0)
                    sample["in_zero_frac"] = in_zero
                samples = info.setdefault("samples", [])
                samples.append(sample)
                if len(samples) > MAX_SAMPLES_PER_LAYER:
                    # keep the first sample (init) and thin the rest evenly
                    del samples[1::2]

            self.recorder.defer(torch.stack(parts), store)

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def _finite(*values: float) -> bool:
    return all(v == v and abs(v) != float("inf") for v in values)
