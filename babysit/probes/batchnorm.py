"""Batch sizes seen by BatchNorm layers that normalize with batch statistics.

Reads only tensor shapes (host-side metadata), so it runs on every call, not just sampled
steps: the trailing batch of an epoch is exactly the one a sampling probe would miss.

A compiled model cannot carry these hooks (Dynamo would trace the bookkeeping and recompile
every step): they are attached only to its eager, sampled forwards, and the other forwards
report the model's input batch size against the shapes those forwards saw.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from babysit.probes.model_facts import BATCHNORM
from babysit.probes.recorder import Recorder

#: Calls with a batch at or below this size are remembered individually.
TINY_BATCH = 1


class BatchNormProbe:
    name = "batchnorm"

    def __init__(
        self,
        recorder: Recorder,
        model: nn.Module,
        current_loader: Any = None,
        prefix: str = "",
        *,
        compiled: bool = False,
    ) -> None:
        self.recorder = recorder
        self.current_loader = current_loader or (lambda: None)
        self.compiled = compiled
        self.handles: list[torch.utils.hooks.RemovableHandle] = []
        #: (module, its pre-hook, the recorder of one call's input shape) per layer
        self._layers: list[tuple[nn.Module, Any, Any]] = []
        #: a compiled model's layers: the per-sample shape each saw in its last eager forward
        self._shapes: dict[int, tuple[int, ...]] = {}
        for name, module in model.named_modules():
            if isinstance(module, BATCHNORM):
                record = self._make_recorder(prefix + name, module)
                hook = recorder.guard(self.name, self._make_hook(record))
                self._layers.append((module, hook, recorder.guard(self.name, record)))
        if not compiled:
            self.attach()

    def attach(self) -> None:
        if not self.handles:
            self.handles = [m.register_forward_pre_hook(hook) for m, hook, _ in self._layers]

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def observe_compiled(self, batch: int) -> None:
        """A compiled forward of ``batch`` samples: each layer is fed as in its eager forwards."""
        if batch <= 0:
            return
        for module, _, record in self._layers:
            shape = self._shapes.get(id(module))
            if shape is not None:
                record(module, (batch, *shape))

    def _make_hook(self, record: Any):
        def hook(mod: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0] if args else None
            if isinstance(x, torch.Tensor) and x.dim() >= 2 and x.shape[0] > 0:
                shape = tuple(int(d) for d in x.shape)
                if self.compiled:
                    self._shapes[id(mod)] = shape[1:]
                record(mod, shape)

        return hook

    def _make_recorder(self, name: str, module: nn.Module):
        counts: dict[int, list[int]] = {}  # size -> the [size, count] pair in the entry
        entry: dict[str, Any] = {"type": type(module).__name__, "batch_sizes": []}

        def record(mod: nn.Module, shape: tuple[int, ...]) -> None:
            # Batch statistics are used in training mode, or always without running stats.
            if not (mod.training or not mod.track_running_stats):
                return
            batch = shape[0]
            per_channel = math.prod(shape) // max(shape[1], 1)
            if not counts:
                self.recorder.trace.batchnorm[name] = entry
            pair = counts.get(batch)
            if pair is None:
                pair = counts[batch] = [batch, 0]
                entry["batch_sizes"].append(pair)
                entry["batch_sizes"].sort()
            pair[1] += 1
            previous = entry.get("min_values_per_channel")
            if previous is None or per_channel < previous:
                entry["min_values_per_channel"] = per_channel
            if batch <= TINY_BATCH and "first_tiny" not in entry:
                entry["first_tiny"] = {
                    "step": self.recorder.step,
                    "batch_size": batch,
                    "values_per_channel": per_channel,
                    "loader": self.current_loader(),
                }

        return record

    def remove(self) -> None:
        self.detach()
