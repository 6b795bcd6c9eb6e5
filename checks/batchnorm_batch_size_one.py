from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.trace import Trace


class BatchNormBatchSizeOne(Check):
    """A BatchNorm layer in training mode normalizes a batch of one (or of very few) samples.

    ## What it does
    Watches every call of a BatchNorm layer that uses batch statistics (training mode, or
    `track_running_stats=False`) and records the batch size. It fires as an `error` when a
    batch of one sample reaches such a layer, and also when a training DataLoader will produce
    one: `len(dataset) % batch_size == 1` with `drop_last=False` means the last batch of every
    epoch has one sample, even if the audit stopped before reaching it. It warns when the typical
    batch is smaller than `small_batch`.

    ## Why is this bad?
    BatchNorm normalizes with the mean and variance of the batch. With one sample there is no
    batch statistic: `BatchNorm1d` raises "Expected more than 1 value per channel when training"
    at the end of the epoch, and `BatchNorm2d` silently normalizes the image with its own
    statistics (InstanceNorm in disguise) and feeds that noise into the running mean and
    variance used at evaluation. Small batches make the statistics noisy and the model's
    accuracy depend on the batch size.

    ## Example
    ```python
    train = TensorDataset(x[:2049], y[:2049])             # 2049 = 32 * 64 + 1
    loader = DataLoader(train, batch_size=64, shuffle=True)  # last batch: 1 sample
    ```

    ## Fix
    Drop the incomplete last batch, use a larger batch, or use a normalization that does not
    depend on the batch:
    ```python
    loader = DataLoader(train, batch_size=64, shuffle=True, drop_last=True)
    # or: nn.GroupNorm(num_groups=8, num_channels=C) / nn.LayerNorm(C) instead of BatchNorm
    ```

    ## Thresholds
    * A batch of 1 (observed or predicted from the DataLoader) is an `error`.
    * `small_batch` = 8: a warning when the median batch that reaches BatchNorm is smaller.
      Wu & He (Group Normalization, 2018) measure BatchNorm's ImageNet error rising steeply
      below 8 images per device (from 23.6 % at 32 to 34.7 % at 2); the Deep Learning Tuning
      Playbook computes BatchNorm statistics over about 64 examples ("ghost batch norm").

    ## References
    * S. Ioffe, C. Szegedy, "Batch Normalization", ICML 2015.
    * Y. Wu, K. He, "Group Normalization", ECCV 2018, figure 1.
    * The babysitting checklist (lecture "Deep learning optimization II"): BatchNorm "cannot
      work with mini-batch of size 1 (σ = 0)"; "requires large mini-batches".
    """

    id = "BS301"
    name = "batchnorm-batch-size-one"
    severity = Severity.ERROR
    summary = "BatchNorm in training mode sees batches of one sample (or very small ones)"
    requires = ("batchnorm",)
    thresholds = {"small_batch": 8}

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        layers = trace.batchnorm
        loaders = {entry.get("id"): entry for entry in trace.loaders}
        tiny = [(name, info) for name, info in layers.items() if info.get("first_tiny")]
        if tiny:
            name, info = tiny[0]
            event = info["first_tiny"]
            loader = loaders.get(event.get("loader"))
            crashes = event.get("values_per_channel", 2) <= 1
            consequence = (
                'PyTorch raises "Expected more than 1 value per channel when training"'
                if crashes
                else "each sample is normalized with its own statistics, and the running "
                "mean/variance used at evaluation absorb that noise"
            )
            source = _loader_text(loader) if loader else ""
            yield self.finding(
                f"BatchNorm layer `{name}` ({info['type']}) received a batch of "
                f"{event['batch_size']} sample in training mode at step {event['step']}: "
                f"{consequence}.{source}",
                _FIX,
                evidence=_evidence(name, info, loader, len(tiny)),
                layer=name,
                file=loader.get("file") if loader else None,
                line=loader.get("line") if loader else None,
            )
            return
        for loader in trace.loaders:
            if (
                loader.get("used_for_training")
                and loader.get("trailing_batch") == 1
                and not loader.get("drop_last")
            ):
                name, info = next(iter(layers.items()))
                yield self.finding(
                    f"The training DataLoader draws {loader['dataset_len']} samples per epoch "
                    f"in batches of {loader['batch_size']} with drop_last=False, so the last "
                    f"batch of every epoch has exactly 1 sample, and the model normalizes with "
                    f"BatchNorm (`{name}` and {len(layers) - 1} more). The observed run did not "
                    "reach the end of an epoch; a full epoch will.",
                    _FIX,
                    evidence=_evidence(name, info, loader, 0),
                    layer=name,
                    file=loader.get("file"),
                    line=loader.get("line"),
                )
                return
        sizes = _batch_sizes(layers)
        if sizes:
            median = statistics.median_low(sizes)
            if median < thresholds["small_batch"]:
                name, info = next(iter(layers.items()))
                yield self.finding(
                    f"BatchNorm layers normalize batches of {median} samples (median over "
                    f"{len(sizes)} calls), below {thresholds['small_batch']}: the batch "
                    "statistics are noisy and evaluation will not match training.",
                    _FIX,
                    evidence=_evidence(name, info, None, 0) | {"median_batch": median},
                    layer=name,
                    severity=Severity.WARNING,
                )


_FIX = (
    "Drop the incomplete last batch, use a larger batch, or switch to a normalization that "
    "does not depend on the batch:\n\n"
    "```python\n"
    "loader = DataLoader(train_set, batch_size=64, shuffle=True, drop_last=True)\n"
    "# or replace nn.BatchNorm2d(C) with nn.GroupNorm(8, C) (or nn.LayerNorm for 1d)\n"
    "```"
)


def _loader_text(loader: dict[str, Any]) -> str:
    if loader.get("dataset_len") is None:
        return ""
    where = f" at {loader['file']}:{loader['line']}" if loader.get("file") else ""
    return (
        f" It is the last batch of the DataLoader{where}: {loader['dataset_len']} samples "
        f"in batches of {loader['batch_size']} with drop_last={loader.get('drop_last')} "
        f"leave {loader.get('trailing_batch')}."
    )


def _evidence(
    name: str, info: dict[str, Any], loader: dict[str, Any] | None, tiny_layers: int
) -> dict[str, Any]:
    evidence: dict[str, Any] = {
        "layer": name,
        "batch_sizes_seen": {str(size): count for size, count in info.get("batch_sizes", [])},
        "min_values_per_channel": info.get("min_values_per_channel"),
    }
    if tiny_layers:
        evidence["layers_affected"] = tiny_layers
    if loader:
        for key in ("dataset_len", "batch_size", "drop_last", "trailing_batch"):
            evidence[f"loader_{key}"] = loader.get(key)
    return evidence


def _batch_sizes(layers: dict[str, dict[str, Any]]) -> list[int]:
    _name, info = next(iter(layers.items()))
    sizes: list[int] = []
    for size, count in info.get("batch_sizes", []):
        sizes.extend([int(size)] * int(count))
    return sizes
