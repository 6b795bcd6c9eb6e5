from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.lint import analyses
from babysit.lint.loaders import has_splat, is_map_style, loader_uses
from babysit.trace import Trace


class TrainLoaderNotShuffled(Check):
    """The training DataLoader does not shuffle (and has no sampler).

    ## What it does
    Finds `DataLoader(...)` constructions used for training — iterated by a loop that calls
    `.backward()`, or bound to a name that says so (`train_loader`, `loaders["train"]`,
    Lightning's `train_dataloader()`) — over a random-access data set (a `TensorDataset`, a
    torchvision data set, a `random_split` part, a `Dataset` class of the same file), with
    neither `shuffle=True` nor a `sampler=`/`batch_sampler=`. Data sets it cannot see
    (iterable or streamed ones cannot be shuffled) and a `shuffle` given as a variable are left
    alone.

    ## Why is this bad?
    Without shuffling every epoch presents the samples in the same order, often sorted by
    class or by time as they were stored. Batches are then not representative, the gradient
    is biased within an epoch, the loss curve shows a saw-tooth, and the model may overfit to
    the order (catastrophically forgetting the first classes by the end of each epoch).

    ## Example
    ```python
    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64)
    ```

    ## Fix
    ```python
    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True)
    ```
    (under DDP, use `sampler=DistributedSampler(dataset)` and `sampler.set_epoch(epoch)`).

    ## Thresholds
    None: a static rule.

    ## References
    * I. Goodfellow, Y. Bengio, A. Courville, "Deep Learning", §8.1.3 (minibatches must be
      selected randomly).
    * PyTorch documentation, `torch.utils.data.DataLoader` (`shuffle` defaults to False).
    """

    id = "BS908"
    name = "train-loader-not-shuffled"
    severity = Severity.WARNING
    summary = "the training DataLoader neither shuffles nor uses a sampler"
    requires = ("sources",)

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        for a in analyses(trace):
            for use in loader_uses(a):
                call = use.call
                if use.role != "train" or has_splat(call):
                    continue
                if a.argument(call, 3, "sampler") or a.argument(call, 4, "batch_sampler"):
                    continue
                shuffle = a.argument(call, 2, "shuffle")
                if shuffle is not None and not (
                    isinstance(shuffle, ast.Constant) and shuffle.value in (False, None)
                ):
                    continue
                if not is_map_style(a, a.argument(call, 0, "dataset")):
                    continue
                label = f"`{use.name}`" if use.name else "the DataLoader"
                why = "iterated by the training loop" if use.trained_on else "named for training"
                yield self.finding(
                    f"{label} ({why}) does not shuffle: every epoch sees the samples in the "
                    "same stored order"
                    + (
                        " (shuffle=False)."
                        if shuffle is not None
                        else " (shuffle defaults to False)."
                    ),
                    "Pass `shuffle=True` (or a `sampler=`, e.g. `DistributedSampler` under DDP).",
                    evidence={"loader": use.name, "shuffle": None if shuffle is None else False},
                    **a.where(call),
                )
