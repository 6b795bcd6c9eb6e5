"""DataLoader facts: which loaders the run iterated, and the size of their trailing batch.

``DataLoader.__iter__`` is wrapped while babysit runs (and restored afterwards) to record, once
per loader, the data set length, batch size and ``drop_last``, and the script line of the loop
that iterates it. The probe also tracks which loader is being iterated, so that a BatchNorm
layer fed a batch of one can say where that batch came from.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from torch.utils.data import DataLoader

from babysit.probes.eval_mode import called_from_update_bn
from babysit.probes.recorder import Recorder, user_frame


class LoaderProbe:
    name = "loaders"

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self._current: dict[str, Any] | None = None
        self._known: dict[int, dict[str, Any]] = {}
        self._original: Callable[..., Any] | None = None
        #: called when the training loader starts an epoch (the first one: at its first
        #: training forward, when it becomes known as the training loader)
        self.on_training_epoch: Callable[[], None] | None = None
        #: called when another loader (validation, test) starts being iterated
        self.on_other_iteration: Callable[[], None] | None = None

    def install(self) -> None:
        original = DataLoader.__iter__
        self._original = original
        observe = self.recorder.guard(self.name, self._observe)

        @functools.wraps(original)
        def __iter__(loader: DataLoader) -> Any:
            observe(loader)
            return original(loader)

        DataLoader.__iter__ = __iter__  # type: ignore[method-assign]

    def remove(self) -> None:
        if self._original is not None:
            DataLoader.__iter__ = self._original  # type: ignore[method-assign]
            self._original = None

    def current_loader(self) -> int | None:
        """The public id (index in ``trace.loaders``) of the loader being iterated."""
        return self._current["id"] if self._current else None

    def iterating_held_out(self) -> bool:
        """Whether the loader iterated last never fed a training forward (validation, test)."""
        current = self._current
        return current is not None and not current["used_for_training"]

    def mark_training(self) -> None:
        """The loader being iterated fed a training forward pass."""
        current = self._current
        if current is not None and not current["used_for_training"]:
            current["used_for_training"] = True
            if self.on_training_epoch is not None:
                self.on_training_epoch()

    def _observe(self, loader: DataLoader) -> None:
        key = id(loader)
        entry = self._known.get(key)
        if entry is None:
            entry = describe_loader(loader)
            entry["id"] = len(self._known)
            entry["used_for_training"] = False
            where = user_frame()
            if where:
                entry["file"], entry["line"] = where
            self._known[key] = entry
            self.recorder.trace.loaders.append(entry)
        entry["iterations"] = entry.get("iterations", 0) + 1
        self._current = entry
        if called_from_update_bn():
            return  # recomputing BatchNorm statistics over the training data is not an epoch
        callback = self.on_training_epoch if entry["used_for_training"] else self.on_other_iteration
        if callback is not None:
            callback()


def describe_loader(loader: DataLoader) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "batch_size": loader.batch_size,
        "drop_last": bool(loader.drop_last),
        "dataset": type(loader.dataset).__name__,
    }
    try:
        # the sampler decides what one epoch draws: a DistributedSampler hands each rank a
        # shard, a custom sampler a subset (len(dataset) would overcount)
        size = len(loader.sampler)  # type: ignore[arg-type]
    except TypeError:  # an IterableDataset, or a sampler without __len__
        size = None
    entry["dataset_len"] = size
    if size is not None and loader.batch_size:
        entry["trailing_batch"] = 0 if loader.drop_last else size % loader.batch_size
        entry["batches_per_epoch"] = (
            size // loader.batch_size if loader.drop_last else -(-size // loader.batch_size)
        )
    return entry
