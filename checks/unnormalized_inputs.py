from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.trace import Trace
from babysit.verified import verified_fix


class UnnormalizedInputs(Check):
    """The model's inputs are not normalized to zero mean and unit variance.

    ## What it does
    Measures, on the first training batches, the mean and standard deviation of every input
    feature (tabular inputs, `(N, F)`) or channel (images and signals, `(N, C, ...)`), and fires
    when the inputs are raw 0–255 pixel values, when their scale is large, when features live
    on wildly different scales, or when the means sit far from zero relative to the spread.
    Integer inputs (token ids, indices) are ignored: they feed embeddings, not arithmetic.

    ## Why is this bad?
    Initialization schemes assume inputs of unit variance: with 0–255 pixels the first layer's
    outputs are ~100× too large, logits saturate and the loss at init is far above chance. Features
    on different scales make the loss surface badly conditioned (one learning rate is too large
    for the big features and too small for the small ones), and a large common offset is a bias
    the first layer has to unlearn.

    ## Example
    ```python
    images = torch.from_numpy(uint8_images).float()   # values 0..255, no ToTensor/Normalize
    ```

    ## Fix
    Standardize with statistics computed on the training split, and reuse them for validation:
    ```python
    mean = x_train.mean(dim=0, keepdim=True)          # images: dim=(0, 2, 3)
    std = x_train.std(dim=0, keepdim=True).clamp_min(1e-8)
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    ```

    ## Thresholds
    * `max_scale` = 10: a feature's |mean| or std above 10 is "large". Standardized features
      measure |mean| < 0.5 and std ≈ 1; raw pixels measure mean ≈ 100, std ≈ 70.
    * `max_std_ratio` = 100: the largest feature std over the smallest non-constant one.
    * `max_mean_offset` = 3: median over features of |mean| / std. Images scaled to [0, 1]
      without `Normalize` measure about 2: that case, between `info_mean_offset` = 1 and 3, is
      reported as `info` only.
    * Raw pixels: image-shaped inputs (N, C, H, W) of integer-valued floats in [0, 255] with a
      maximum of at least 32.

    ## References
    * The babysitting checklist (lecture "Deep learning optimization II"): "preprocess the data
      (at least to have 0 mean)"; "transform the input to zero-mean, unit variance"; compute
      the mean and variance of the training samples.
    * Y. LeCun et al., "Efficient BackProp" (1998), section 4.3, normalizing the inputs.
    * smdebug CheckInputImages (|mean| ≤ 0.2); UMLAUT (inputs in [-1, 1]).
    """

    id = "BS201"
    name = "unnormalized-inputs"
    severity = Severity.WARNING
    summary = "inputs are not zero-mean / unit-variance (raw pixels, mixed scales, offsets)"
    requires = ("inputs",)
    thresholds = {
        "max_scale": 10.0,
        "max_std_ratio": 100.0,
        "max_mean_offset": 3.0,
        "info_mean_offset": 1.0,
    }

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        batches = [b for b in trace.inputs if b.get("floating") and b.get("std") is not None]
        if not batches:
            return
        batch = batches[0]
        scale = max(batch["feature_std_max"], batch["feature_absmean_max"])
        spread = _spread(batch)
        offset = batch.get("feature_offset_median")
        offset = offset if offset == offset else None  # NaN when every feature is constant
        evidence = {
            "argument": batch.get("argument"),
            "shape": batch.get("shape"),
            "min": batch["min"],
            "max": batch["max"],
            "mean": batch["mean"],
            "std": batch["std"],
            "feature_std_range": [batch["feature_std_min"], batch["feature_std_max"]],
            "median_mean_offset": offset,
            "batches_measured": len(batches),
        }
        if batch.get("feature_mean") is not None:
            evidence["per_feature_mean"] = batch["feature_mean"]
            evidence["per_feature_std"] = batch["feature_std"]
        problems: list[str] = []
        # image-shaped (N, C, H, W...) integer values in [0, 255] reaching well above 1:
        # integer count features (bag of words, 0..5) are not pixels
        raw_pixels = (
            batch["integer_valued"]
            and len(batch.get("shape", [])) >= 4
            and batch["min"] >= 0
            and 32 <= batch["max"] <= 255
        )
        if raw_pixels:
            problems.append(
                f"the inputs look like raw 0–255 pixel values (integer-valued, range "
                f"[{batch['min']:g}, {batch['max']:g}], mean {batch['mean']:.3g})"
            )
        elif scale > thresholds["max_scale"]:
            problems.append(
                f"the inputs are on a large scale (a feature with |mean| or std of "
                f"{scale:.3g}; threshold {thresholds['max_scale']:g})"
            )
        if spread is not None and spread > thresholds["max_std_ratio"]:
            problems.append(
                f"the features are on wildly different scales (std from "
                f"{batch['feature_std_min']:.3g} to {batch['feature_std_max']:.3g}, a "
                f"{spread:.3g}× spread)"
            )
        if offset is not None and offset > thresholds["max_mean_offset"] and not raw_pixels:
            problems.append(
                f"the feature means sit far from zero ({offset:.3g} standard deviations, "
                "median over features)"
            )
        if problems:
            verified, extra = verified_fix(trace, self.name)
            evidence.update(extra)
            yield self.finding(
                "Input batch " + _shape(batch) + ": " + "; ".join(problems) + "." + verified,
                _fix(batch, raw_pixels),
                evidence=evidence,
            )
        elif offset is not None and offset > thresholds["info_mean_offset"]:
            yield self.finding(
                f"Input batch {_shape(batch)} is not zero-mean: its feature means sit "
                f"{offset:.3g} standard deviations from zero (values in "
                f"[{batch['min']:.3g}, {batch['max']:.3g}]).",
                _fix(batch, raw_pixels),
                evidence=evidence,
                severity=Severity.INFO,
            )


def _spread(batch: dict[str, Any]) -> float | None:
    low, high = batch.get("feature_std_min"), batch.get("feature_std_max")
    if not low or low == float("inf") or not high or batch.get("num_features", 0) < 2:
        return None
    return high / low


def _shape(batch: dict[str, Any]) -> str:
    return "(" + ", ".join(str(s) for s in batch.get("shape", [])) + ")"


def _fix(batch: dict[str, Any], raw_pixels: bool) -> str:
    dim = batch.get("feature_dim")
    rank = len(batch.get("shape", []))
    if raw_pixels or (dim == 1 and rank >= 3):
        means = batch.get("feature_mean")
        stds = batch.get("feature_std")
        scale = 255.0 if raw_pixels else 1.0
        if means and stds and len(means) <= 8:
            mean_text = ", ".join(f"{m / scale:.3f}" for m in means)
            std_text = ", ".join(f"{s / scale:.3f}" for s in stds)
            values = f"mean=[{mean_text}], std=[{std_text}]"
        else:
            values = "mean=channel_means, std=channel_stds"
        scaling = "x = x / 255.0                      # 0..255 -> 0..1\n" if raw_pixels else ""
        return (
            "Scale the pixels to [0, 1] and normalize each channel with the training set's "
            "statistics (the values below were measured on this batch"
            + (", after dividing by 255" if raw_pixels else "")
            + "; compute them over the whole training set):\n\n"
            "```python\n"
            f"{scaling}"
            f"normalize = torchvision.transforms.Normalize({values})\n"
            "# or, without torchvision, per channel:\n"
            "mean = x_train.mean(dim=(0, 2, 3), keepdim=True)\n"
            "std = x_train.std(dim=(0, 2, 3), keepdim=True)\n"
            "x = (x - mean) / std\n"
            "```"
        )
    return (
        "Standardize every feature with statistics computed on the training split, and apply "
        "the same statistics to validation and test data:\n\n"
        "```python\n"
        "mean = x_train.mean(dim=0, keepdim=True)\n"
        "std = x_train.std(dim=0, keepdim=True).clamp_min(1e-8)\n"
        "x_train = (x_train - mean) / std\n"
        "x_val = (x_val - mean) / std\n"
        "```\n"
        "(`sklearn.preprocessing.StandardScaler` does the same for NumPy arrays.)"
    )
