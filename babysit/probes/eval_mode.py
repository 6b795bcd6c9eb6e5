"""Validation forwards with Dropout or BatchNorm still in training mode (``model.eval()`` missing).

A forward pass under ``torch.no_grad()`` / ``torch.inference_mode()`` is evaluation. If the
model's Dropout layers (p > 0) or BatchNorm layers with running statistics are in training mode
then, validation drops units at random and normalizes with the batch's statistics (and updates
the running statistics with validation data). The probe checks the modules' ``training`` flags:
a Python attribute read per mode-sensitive module, no tensor work.

``torch.optim.swa_utils.update_bn`` runs the model in training mode under ``no_grad`` on
purpose (to recompute BatchNorm statistics); forwards from there are not reported. Neither are
forwards of a model that is itself in eval mode: its Dropout layers were switched back to
training mode one by one, which is Monte-Carlo dropout, not a forgotten ``model.eval()``.
"""

from __future__ import annotations

import sys
from typing import Any

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

from babysit.probes.recorder import Recorder, user_frame

#: Call sites whose script line is looked up (a frame walk) per step; later forwards only count.
MAX_EVENTS = 50


class EvalModeProbe:
    name = "eval_mode"

    def __init__(self, recorder: Recorder, model: nn.Module, prefix: str = "") -> None:
        self.recorder = recorder
        self.model = model
        self.sensitive = [
            (prefix + name, module)
            for name, module in model.named_modules()
            if (isinstance(module, _DropoutNd) and module.p > 0)
            or (isinstance(module, _BatchNorm) and module.track_running_stats)
        ]
        self._event: dict[str, Any] | None = None

    def observe(self) -> None:
        """Called for each forward pass of the model without gradients."""
        if not self.sensitive or not self.model.training:
            return
        training = [name for name, module in self.sensitive if module.training]
        if not training:
            return
        event = self._event
        step = self.recorder.step
        if event is not None and event["step"] == step:
            event["count"] += 1
            return
        if called_from_update_bn():
            return
        events = self.recorder.trace.events
        if sum(1 for e in events if e.get("kind") == "eval-train-mode") >= MAX_EVENTS:
            return
        event = {
            "kind": "eval-train-mode",
            "step": step,
            "count": 1,
            "modules": training[:10],
            "modules_total": len(training),
            "dropout": sum(isinstance(m, _DropoutNd) for _, m in self.sensitive if m.training),
            "batchnorm": sum(isinstance(m, _BatchNorm) for _, m in self.sensitive if m.training),
        }
        where = user_frame()
        if where:
            event["file"], event["line"] = where
        events.append(event)
        self._event = event


def called_from_update_bn() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == "update_bn" and "swa_utils" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False
