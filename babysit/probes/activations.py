"""Per-layer activation statistics on sampled training forwards.

For each leaf module the hook reduces the output (and, for Linear/conv layers, the input) to a
handful of scalars on the tensor's device: Σx and ‖x‖ (``vector_norm`` is several times cheaper
than ``var``), ‖sign(x)‖² = the number of non-zeros (cheaper than ``x == 0``), and, for
rectifiers, the per-unit maximum (dead units). The scalars wait in the Recorder until the step is
flushed. Nothing is kept alive after the hook.

The leaf hooks exist only during sampled forward passes: ``begin()`` attaches them and ``end()``
removes them, so unsampled steps pay nothing for them. A compiled model keeps them attached
(changing hooks would make ``torch.compile`` recompile); they then return at once.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from babysit.probes.model_facts import activation_kind, is_weight_layer
from babysit.probes.recorder import Recorder, eager

MAX_SAMPLES_PER_LAYER = 256
#: |pre-activation| at or above which tanh/sigmoid count as saturated (DeepDiagnosis).
SATURATION_LEVEL = 5.0


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


def unit_dim(x: torch.Tensor) -> int:
    """The dimension that indexes units: channels for conv maps, features otherwise."""
    return 1 if x.dim() in (2, 4, 5) else x.dim() - 1


def unit_peaks(x: torch.Tensor) -> torch.Tensor:
    """Each unit's largest value over the batch (and feature map); the host counts the units
    that never went above zero. One reduction, instead of four small ops per layer."""
    d = unit_dim(x)
    return x.amax(dim=[i for i in range(x.dim()) if i != d]).to(torch.float32)


def moments(x: torch.Tensor, zeros: bool) -> list[torch.Tensor]:
    """Σx, ‖x‖ and (with ``zeros``) ‖sign(x)‖: host-side they give E[x], E[x²] and the
    fraction of exact zeros."""
    # float32 accumulation for half precision; a float64 input keeps float64 (vector_norm
    # refuses a narrowing dtype) and its results are cast down
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    parts = [x.sum(dtype=acc), torch.linalg.vector_norm(x, dtype=acc)]
    if zeros:
        parts.append(torch.linalg.vector_norm(torch.sign(x), dtype=acc))
    return parts if acc == torch.float32 else [p.to(torch.float32) for p in parts]


def from_moments(values: list[float], n: int, zeros: bool) -> dict[str, float]:
    n = max(n, 1)
    mean = values[0] / n
    second = values[1] ** 2 / n
    out = {"mean": mean, "var": max(second - mean * mean, 0.0), "second": second}
    if zeros:
        out["zero_frac"] = min(max(1.0 - round(values[2] ** 2) / n, 0.0), 1.0)
    return out


class ActivationProbe:
    """Forward hooks on the leaves of one model, present while the model records."""

    name = "activations"

    def __init__(
        self, recorder: Recorder, model: nn.Module, *, persistent: bool = False, prefix: str = ""
    ) -> None:
        self.recorder = recorder
        self.model = model
        self.persistent = persistent
        self.recording = False
        self._order = 0
        self._seen: set[int] = set()
        self._cache: dict[tuple[int, int], tuple[torch.Tensor, list[torch.Tensor]]] = {}
        self._ordered_once = False
        self.handles: list[torch.utils.hooks.RemovableHandle] = []
        self._leaves: list[tuple[nn.Module, Any]] = []
        for local, module in model.named_modules():
            if not local or any(True for _ in module.children()):
                continue
            name = prefix + local
            info = recorder.trace.layers.setdefault(name, {"type": type(module).__name__})
            kind = activation_kind(module)
            if kind:
                info["activation"] = kind
            hook = recorder.guard(self.name, self._make_hook(name, module, kind, info))
            self._leaves.append((module, self._gated(hook) if persistent else hook))
        if persistent:
            self._attach()

    def _gated(self, hook: Any) -> Any:
        """The hook as a compiled model traces it: one flag read (two graph variants, no
        per-step guards), the statistics computed eagerly behind a graph break on sampled
        forwards only."""
        opaque = eager(hook)

        def gate(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if self.recording:
                opaque(module, args, output)

        return gate

    def _attach(self) -> None:
        self.handles = [module.register_forward_hook(hook) for module, hook in self._leaves]

    def _detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def begin(self) -> None:
        self.recording = True
        self._order = 0
        self._seen.clear()
        self._cache.clear()
        if not self.persistent:
            self._attach()

    def end(self) -> None:
        if not self.recording:
            return
        self._ordered_once = True
        self.recording = False
        self._cache.clear()
        if not self.persistent:
            self._detach()

    def _moments_cached(self, x: torch.Tensor, zeros: bool) -> list[torch.Tensor]:
        # A Linear layer's input is usually the previous module's output: reduce it once.
        # The cache holds the tensor itself until end(), so its id cannot be reused by another
        # object meanwhile; the version counter catches in-place ops (ReLU(inplace=True)).
        if self.persistent:  # compiled: Dynamo would guard on id() and recompile every step
            return moments(x.detach(), zeros)
        key = (id(x), x._version)
        hit = self._cache.get(key)
        if hit is None or (zeros and len(hit[1]) < 3):
            parts = moments(x.detach(), zeros)
            self._cache[key] = (x, parts)
            return parts
        return hit[1]

    def _make_hook(self, name: str, module: nn.Module, kind: str | None, info: dict[str, Any]):
        weight_layer = is_weight_layer(module)
        rectifier = kind in ("relu", "leaky_relu")
        saturating = kind in ("tanh", "sigmoid")
        key = id(module)

        def hook(mod: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if not self.recording or key in self._seen:
                return
            self._seen.add(key)
            first = not self._ordered_once
            if first:
                info.setdefault("order", self._order)
            self._order += 1
            out = first_tensor(output)
            if out is None or not out.is_floating_point() or out.numel() == 0:
                return
            # Zero fractions serve the init checks (functional-ReLU inference): first forward only.
            zeros = rectifier and first
            parts = list(self._moments_cached(out, zeros=zeros))[: 3 if zeros else 2]
            out = out.detach()
            units = int(out.shape[unit_dim(out)]) if out.dim() >= 2 else 0
            per_unit = out.numel() // units if units else 0
            peaks = unit_peaks(out) if rectifier and units else None
            pre = first_tensor(args) if saturating else None
            has_pre = pre is not None and pre.is_floating_point() and pre.numel() > 0
            if has_pre:
                level = (pre.detach().abs() >= SATURATION_LEVEL).sum(dtype=torch.float32)
                parts.append(level / max(pre.numel(), 1))
            source = first_tensor(args) if weight_layer else None
            has_input = source is not None and source.is_floating_point() and source.numel() > 0
            if has_input:
                parts.extend(self._moments_cached(source, zeros=first)[: 3 if first else 2])
                in_numel = source.numel()
            step = self.recorder.step
            numel = out.numel()

            def store(values: list[float]) -> None:
                stats = from_moments(values, numel, zeros)
                sample: dict[str, Any] = {
                    "step": step,
                    "numel": numel,
                    "mean": stats["mean"],
                    "var": stats["var"],
                    "finite": _finite(values[0], values[1]),
                }
                rest = values[3 if zeros else 2 :]
                if zeros:
                    sample["zero_frac"] = stats["zero_frac"]
                if peaks is not None:
                    unit_max, rest = rest[-units:], rest[:-units]
                    sample["dead_frac"] = sum(1 for v in unit_max if not v > 0) / units
                    sample["samples_per_unit"] = per_unit
                if has_pre:
                    sample["saturated_frac"], rest = rest[0], rest[1:]
                if has_input:
                    source_stats = from_moments(rest, in_numel, zeros=first)
                    sample["in_mean"] = source_stats["mean"]
                    sample["in_var"] = source_stats["var"]
                    if first:
                        sample["in_zero_frac"] = source_stats["zero_frac"]
                samples = info.setdefault("samples", [])
                samples.append(sample)
                if len(samples) > MAX_SAMPLES_PER_LAYER:
                    # keep the first sample (init) and thin the rest evenly
                    del samples[1::2]

            payload = torch.stack(parts)
            if peaks is not None:
                payload = torch.cat([payload, peaks])
            self.recorder.defer(payload, store)

        return hook

    def remove(self) -> None:
        self.recording = False
        self._detach()


def _finite(*values: float) -> bool:
    return all(v == v and abs(v) != float("inf") for v in values)
