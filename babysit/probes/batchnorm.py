"""Batch sizes seen by BatchNorm layers that normalize with batch statistics.

Reads only tensor shapes (host-side metadata), so it runs on every call, not just sampled
steps: the trailing batch of an epoch is exactly the one a sampling probe would miss.
"""

from __future__ import annotations

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
        self, recorder: Recorder, model: nn.Module, current_loader: Any = None, prefix: str = ""
    ) -> None:
        self.recorder = recorder
        self.current_loader = current_loader or (lambda: None)
        self.handles: list[torch.utils.hooks.RemovableHandle] = []
        for name, module in model.named_modules():
            if isinstance(module, BATCHNORM):
                hook = recorder.guard(self.name, self._make_hook(prefix + name, module))
                self.handles.append(module.register_forward_pre_hook(hook))

    def _make_hook(self, name: str, module: nn.Module):
        counts: dict[int, list[int]] = {}  # size -> the [size, count] pair in the entry
        entry: dict[str, Any] = {"type": type(module).__name__, "batch_sizes": []}

        def hook(mod: nn.Module, args: tuple[Any, ...]) -> None:
            # Batch statistics are used in training mode, or always without running stats.
            if not (mod.training or not mod.track_running_stats) or not args:
                return
            x = args[0]
            if not isinstance(x, torch.Tensor) or x.dim() < 2:
                return
            batch = int(x.shape[0])
            if batch == 0:
                return
            per_channel = x.numel() // max(int(x.shape[1]), 1)
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

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
