"""The shape of a real run: training epochs and validation passes, with their mean losses.

The train/validation checks compare the training loss of an epoch with the validation loss
measured after it. Nothing here synchronizes with the device: losses are summed as 0-d tensors
on their device and the means are deferred to the Recorder's next flush.

- An **epoch** starts each time the training DataLoader (the loader that fed a training
  forward pass) is iterated again, or when a trainer callback says so.
- A **validation pass** is a run of consecutive loss calls made without gradients or with the
  model in eval mode; it ends at the next training loss, optimizer step or DataLoader
  iteration. Its ``train_loss`` is the mean training loss since the previous pass, so each pass
  can be compared with the training it follows.
"""

from __future__ import annotations

from typing import Any

import torch

from babysit.probes.recorder import Recorder


class _Mean:
    """The sum of 0-d loss tensors, read at a flush, never in between.

    ``add`` only appends (no tensor op per step): the values are summed on their device in one
    ``stack().sum()`` when a block of them is full or the mean is taken. The callers pass
    values nobody modifies afterwards (the loss probe's float32 copies).
    """

    BLOCK = 1024

    def __init__(self) -> None:
        self.values: list[torch.Tensor] = []
        self.total: torch.Tensor | None = None
        self.count = 0

    def add(self, value: torch.Tensor) -> None:
        self.values.append(value)
        self.count += 1
        if len(self.values) >= self.BLOCK:
            self._fold()

    def _fold(self) -> None:
        device = self.values[0].device
        block = torch.stack([v.detach().to(device, torch.float32) for v in self.values]).sum()
        self.total = block if self.total is None else self.total + block.to(self.total.device)
        self.values = []

    def take(self) -> tuple[torch.Tensor, int] | None:
        if self.count == 0:
            return None
        if self.values:
            self._fold()
        result = (self.total, self.count)
        self.total, self.count = None, 0
        return result  # type: ignore[return-value]


def _mean(parts: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, int] | None:
    """Combine (sum, count) parts into (mean, count); a few ops per pass, not per step."""
    if not parts:
        return None
    count = sum(n for _, n in parts)
    device = parts[0][0].device
    total = torch.stack([t.to(device) for t, _ in parts]).sum()
    return total / count, count


class EpochProbe:
    name = "epochs"

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.epoch = 0
        self.source: str | None = None  # "loader" or a trainer's name: who counts epochs
        self._epoch_entry: dict[str, Any] | None = None
        # One running sum per stretch of training steps between any two boundaries (epoch
        # or validation pass): one tensor op per step. The stretches are combined per epoch
        # and per validation window when those close.
        self._segment = _Mean()
        self._epoch_parts: list[tuple[torch.Tensor, int]] = []
        self._window_parts: list[tuple[torch.Tensor, int]] = []  # since the last pass
        self._pass_entry: dict[str, Any] | None = None
        self._pass_mean = _Mean()

    # -- losses ------------------------------------------------------------------------------
    def training_loss(self, value: torch.Tensor) -> None:
        self.end_pass()
        self._segment.add(value)

    def _cut(self) -> None:
        part = self._segment.take()
        if part is not None:
            self._epoch_parts.append(part)
            self._window_parts.append(part)

    def eval_loss(self, value: torch.Tensor) -> None:
        if self._pass_entry is None:
            self._pass_entry = {
                "step": self.recorder.step,
                "epoch": self.epoch or None,
                "source": "loss",
            }
        self._pass_mean.add(value)

    def end_pass(self) -> None:
        """Close the open validation pass, if any (cheap when there is none)."""
        entry = self._pass_entry
        if entry is None:
            return
        self._pass_entry = None
        val = self._pass_mean.take()
        if val is None:
            return
        entry["batches"] = val[1]
        entry["val_loss"] = None
        entry["train_loss"] = None
        self.recorder.trace.evals.append(entry)
        self._cut()
        window = _mean(self._window_parts)
        self._window_parts = []
        values = [val[0] / val[1]] + ([window[0].to(val[0].device)] if window else [])

        def store(numbers: list[float]) -> None:
            entry["val_loss"] = numbers[0]
            if len(numbers) > 1:
                entry["train_loss"] = numbers[1]

        self.recorder.defer(torch.stack(values), store)

    def eval_forward(self) -> None:
        """A watched model ran without gradients or in eval mode: evaluation, even when its
        loss is computed without ``torch.nn.functional`` (a custom or metric-only validation)."""
        run = self.recorder.trace.run
        run["eval_forwards"] = run.get("eval_forwards", 0) + 1

    # -- epochs ------------------------------------------------------------------------------
    def start_epoch(self, source: str) -> None:
        """A training epoch begins. The first source that reports epochs keeps counting them:
        the DataLoader when the script uses one, otherwise a trainer callback."""
        if self.source is None:
            self.source = source
        elif source != self.source:
            return
        self.end_pass()
        self._close_epoch()
        self.epoch += 1
        self._epoch_entry = {
            "epoch": self.epoch,
            "start_step": self.recorder.step,
            "end_step": None,
            "train_loss": None,
        }
        self.recorder.trace.epochs.append(self._epoch_entry)
        self.recorder.trace.run["epochs"] = self.epoch

    def _close_epoch(self) -> None:
        entry, self._epoch_entry = self._epoch_entry, None
        if entry is None:
            return
        entry["end_step"] = self.recorder.step
        self._cut()
        mean = _mean(self._epoch_parts)
        self._epoch_parts = []
        if mean is None:
            return
        entry["batches"] = mean[1]

        def store(numbers: list[float]) -> None:
            entry["train_loss"] = numbers[0]

        self.recorder.defer(mean[0].reshape(1), store)

    def close(self) -> None:
        self.end_pass()
        self._close_epoch()
