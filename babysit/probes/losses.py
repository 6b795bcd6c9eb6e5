"""Loss capture: wraps the loss functions of ``torch.nn.functional`` while babysit runs.

Loss modules (``nn.CrossEntropyLoss`` and friends) call these functions through the
``torch.nn.functional`` module attribute, so one wrapper catches both styles, and losses that
Hugging Face models compute inside ``forward``. The originals are restored on exit.

For the first few training calls the wrapper also summarizes the targets on the device (class
counts, label prior entropy, target variance): the numbers chance-level loss is derived from.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from babysit.probes.epochs import EpochProbe
from babysit.probes.recorder import Recorder, eager, is_compiling, user_frame

CLASSIFICATION = ("cross_entropy", "nll_loss")
BINARY = ("binary_cross_entropy", "binary_cross_entropy_with_logits")
REGRESSION = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss")
WRAPPED = (*CLASSIFICATION, *BINARY, *REGRESSION, "kl_div")

#: Training calls whose targets are summarized (the first is the loss at init).
DETAILED_CALLS = 3
#: Validation calls kept in ``trace.losses`` (later ones only feed the step series).
DETAILED_EVAL_CALLS = 3


class LossProbe:
    name = "losses"

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.depth = 0
        self.training_calls = 0
        self.eval_calls = 0
        self.calls_this_forward = 0
        #: training loss calls since the watched model's last forward (a multi-task model sums
        #: several): the pre-flight replays only the first, which the checks must know
        self.training_calls_this_forward = 0
        self.first_call: LossCall | None = None
        #: keep the first training call (targets cloned) for the experiments of an audit
        self.capture_first = False
        #: called with (call, prediction) when the first training loss call is captured
        self.on_first_call: Callable[[LossCall, torch.Tensor], None] | None = None
        self._originals: dict[str, Callable[..., Any]] = {}
        #: whether the watched model's last forward was a training one (training mode with
        #: gradients); a loss after an eval forward is a validation loss (set by the session)
        self.model_training = True
        #: receives every loss value, split into training and validation (set by the session)
        self.epochs: EpochProbe | None = None
        #: whether a validation/test DataLoader is being iterated (set by the session)
        self.held_out: Callable[[], bool] | None = None

    def install(self) -> None:
        for name in WRAPPED:
            original = getattr(F, name)
            self._originals[name] = original
            setattr(F, name, self._wrap(name, original))

    def remove(self) -> None:
        for name, original in self._originals.items():
            setattr(F, name, original)
        self._originals.clear()

    def _wrap(self, kind: str, original: Callable[..., Any]) -> Callable[..., Any]:
        begin = self.recorder.guard(self.name, self._begin)
        finish = self.recorder.guard(self.name, self._finish)

        def after_compiled(args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
            event = None
            if self.training_calls < DETAILED_CALLS or self.eval_calls < DETAILED_EVAL_CALLS:
                event = begin(kind, original, args, kwargs)
            finish(event, result)

        record_compiled = eager(after_compiled)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if is_compiling():
                # Traced into a compiled forward (a model that computes its own loss): the loss
                # stays in the graph and the bookkeeping runs eagerly behind one graph break,
                # so no guard ever reads babysit's counters
                result = original(*args, **kwargs)
                record_compiled(args, kwargs, result)
                return result
            if self.depth:  # a loss calling another loss: only the outer call counts
                return original(*args, **kwargs)
            # Targets are summarized before the call: an out-of-range class index makes
            # cross_entropy raise, and the report should still explain why. Only the first
            # few calls are detailed; the rest take the short path.
            event = None
            if self._detailing(args, kwargs):
                event = begin(kind, original, args, kwargs)
            self.depth = 1
            try:
                result = original(*args, **kwargs)
            finally:
                self.depth = 0
            finish(event, result)
            return result

        return wrapper

    def _detailing(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Whether this call is among the first few of its kind (training or validation),
        which are summarized in detail. The common case, a training step once the first
        calls are done, answers without entering ``_begin``."""
        if self.training_calls < DETAILED_CALLS:
            return True
        if self.eval_calls >= DETAILED_EVAL_CALLS:
            return False
        prediction = _arg(args, kwargs, 0, "input")
        training = torch.is_grad_enabled() and getattr(prediction, "requires_grad", False)
        return not training

    def observe_model_loss(self, loss: torch.Tensor) -> None:
        """A loss returned by the model itself (``output.loss``), when no function call was seen."""
        if self.calls_this_forward == 0:
            event = self._begin("model_output", None, (loss,), {})
            self._finish(event, loss)

    def _begin(
        self,
        kind: str,
        original: Callable[..., Any] | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> dict[str, Any] | None:
        """Open a detailed event for the first few calls; None for the rest."""
        prediction = _arg(args, kwargs, 0, "input")
        if not isinstance(prediction, torch.Tensor):
            return None
        training = torch.is_grad_enabled() and prediction.requires_grad
        if training:
            if self.training_calls >= DETAILED_CALLS:
                return None
            self.training_calls += 1
        else:
            if self.eval_calls >= DETAILED_EVAL_CALLS:
                return None
            self.eval_calls += 1
        recorder = self.recorder
        event: dict[str, Any] = {"step": recorder.step, "kind": kind, "training": training}
        where = user_frame()
        if where:
            event["file"], event["line"] = where
        recorder.trace.losses.append(event)
        if kind == "model_output":
            return event
        target = _arg(args, kwargs, 1, "target")
        event["reduction"] = _reduction(kwargs)
        if prediction.numel() == 0 or (isinstance(target, torch.Tensor) and target.numel() == 0):
            event["empty"] = True
            return event
        event["prediction_shape"] = list(prediction.shape)
        if isinstance(target, torch.Tensor):
            event["target_shape"] = list(target.shape)
            event["target_dtype"] = str(target.dtype).replace("torch.", "")
            if self.capture_first and training and self.first_call is None and original:
                self.first_call = LossCall.capture(kind, original, target, args, kwargs)
                if self.on_first_call is not None:
                    self.on_first_call(self.first_call, prediction)
            with torch.no_grad():
                if kind in CLASSIFICATION:
                    _classification_stats(
                        event, prediction.detach(), target.detach(), kwargs, recorder
                    )
                elif kind in BINARY:
                    _binary_stats(event, prediction.detach(), target.detach(), recorder)
                elif kind in REGRESSION:
                    _regression_stats(event, prediction.detach(), target.detach(), recorder)
        return event

    def _finish(self, event: dict[str, Any] | None, result: Any) -> None:
        if not isinstance(result, torch.Tensor) or not result.is_floating_point():
            return
        self.calls_this_forward += 1
        value = result.detach()
        # a float32 copy: a script may scale its loss in place (`loss /= accumulation_steps`)
        # before the flush reads it; reduction="none" losses are averaged
        if value.dim():
            value = value.float().mean()
        else:
            value = value.clone() if value.dtype == torch.float32 else value.float()
        training = result.requires_grad and self.model_training
        if not training and self.model_training and not (self.held_out and self.held_out()):
            # a loss recomputed without gradients on a training forward's output (a logged
            # metric): neither training nor validation. On a held-out loader it is another
            # model's validation (an EMA or teacher copy, which is not watched: no parameter
            # trains)
            return
        self.recorder.series("loss" if training else "eval_loss", value)
        if training:
            self.training_calls_this_forward += 1
            run = self.recorder.trace.run
            if self.training_calls_this_forward > run.get("training_losses_per_forward", 1):
                run["training_losses_per_forward"] = self.training_calls_this_forward
        if self.epochs is not None:
            if training:
                self.epochs.training_loss(value)
            else:
                self.epochs.eval_loss(value)
        if event is not None:

            def store_value(values: list[float]) -> None:
                event["value"] = values[0]

            self.recorder.defer(value, store_value)


@dataclass
class LossCall:
    """The first training loss call, kept (detached) so experiments can compute the same loss.

    ``output_path`` says how the model's output became the loss input: ``None`` when it could
    not be matched, otherwise a tuple of steps (``("key", k)`` and/or ``("reshape", shape)``).
    """

    kind: str
    function: Callable[..., Any]
    target: torch.Tensor
    extra_args: tuple[Any, ...]
    options: dict[str, Any]
    output_path: tuple[tuple[Any, ...], ...] | None = None

    @classmethod
    def capture(
        cls,
        kind: str,
        function: Callable[..., Any],
        target: torch.Tensor,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> LossCall:
        def detach(value: Any) -> Any:
            return value.detach().clone() if isinstance(value, torch.Tensor) else value

        options = {k: detach(v) for k, v in kwargs.items() if k not in ("input", "target")}
        return cls(kind, function, detach(target), tuple(detach(a) for a in args[2:]), options)

    def __call__(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.function(prediction, target, *self.extra_args, **self.options)


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name)


def _reduction(kwargs: dict[str, Any]) -> str:
    if kwargs.get("reduction") is not None:
        return str(kwargs["reduction"])
    if kwargs.get("size_average") is False or kwargs.get("reduce") is False:
        return "sum" if kwargs.get("reduce") is not False else "none"
    return "mean"


def _classification_stats(
    event: dict[str, Any],
    logits: torch.Tensor,
    target: torch.Tensor,
    kwargs: dict[str, Any],
    recorder: Recorder,
) -> None:
    num_classes = int(logits.shape[1] if logits.dim() >= 2 else logits.shape[0])
    event["num_classes"] = num_classes
    event["label_smoothing"] = float(kwargs.get("label_smoothing") or 0.0)
    event["class_weights"] = kwargs.get("weight") is not None
    ignore_index = int(kwargs.get("ignore_index", -100))
    logit_std = logits.float().std() if logits.numel() > 1 else logits.new_zeros(()).float()
    if target.is_floating_point():
        # Class probabilities: the prior is their average over every non-class dimension.
        event["soft_targets"] = True
        probs = (
            target.float().movedim(1, -1).reshape(-1, num_classes)
            if logits.dim() >= 2
            else (target.float().reshape(1, -1))
        )
        counts = probs.sum(dim=0)
        out_of_range = ((probs < 0) | (probs > 1)).sum().float()
        n = probs.new_full((), float(probs.shape[0]))  # a fill kernel, not a host copy
    else:
        t = target.reshape(-1).long()
        valid = t != ignore_index
        in_range = (t >= 0) & (t < num_classes)
        out_of_range = (valid & ~in_range).sum().float()
        weights = (valid & in_range).float()
        counts = torch.zeros(num_classes, device=t.device).scatter_add_(
            0, t.clamp(0, num_classes - 1), weights
        )
        n = weights.sum()
        big = torch.iinfo(torch.long)
        low = torch.where(valid, t, torch.full_like(t, big.max)).min().float()
        high = torch.where(valid, t, torch.full_like(t, big.min)).max().float()
        t_range = torch.stack([low, high]) if t.numel() else n.new_zeros(2)
    if target.is_floating_point():
        t_range = torch.stack([probs.min(), probs.max()])
    payload = torch.cat([torch.stack([out_of_range, n, logit_std.to(n.device)]), t_range, counts])

    def store(values: list[float]) -> None:
        event["targets_out_of_range"] = int(values[0])
        event["num_targets"] = int(values[1])
        event["prediction_std"] = values[2]
        event["target_range"] = values[3:5]
        event["class_counts"] = values[5:]

    recorder.defer(payload, store)


def _binary_stats(
    event: dict[str, Any], prediction: torch.Tensor, target: torch.Tensor, recorder: Recorder
) -> None:
    t = target.float()
    out_of_range = ((t < 0) | (t > 1)).sum().float()
    per_output = t.clamp(0, 1)
    per_output = per_output.mean(dim=0) if per_output.dim() >= 2 else per_output.mean().reshape(1)
    p = per_output.clamp(1e-7, 1 - 1e-7)
    entropy = -(p * p.log() + (1 - p) * (1 - p).log())
    payload = torch.stack(
        [
            out_of_range,
            t.min(),
            t.max(),
            t.new_full((), float(t.numel())),
            entropy.mean(),
            t.clamp(0, 1).mean(),
            prediction.float().std() if prediction.numel() > 1 else t.new_zeros(()),
        ]
    )

    def store(values: list[float]) -> None:
        event["targets_out_of_range"] = int(values[0])
        event["target_range"] = values[1:3]
        event["num_targets"] = int(values[3])
        event["prior_entropy"] = values[4]
        event["positive_rate"] = values[5]
        event["prediction_std"] = values[6]
        event["uniform_loss"] = math.log(2)

    recorder.defer(payload, store)


def _regression_stats(
    event: dict[str, Any], prediction: torch.Tensor, target: torch.Tensor, recorder: Recorder
) -> None:
    y = target.float()
    if y.dim() == 0 or y.numel() < 2:
        return
    rows = y.reshape(y.shape[0], -1) if y.dim() >= 2 else y.reshape(-1, 1)
    var = rows.var(dim=0, unbiased=False).mean()
    second = rows.square().mean()
    mad = (rows - rows.median(dim=0).values).abs().mean()
    pred = prediction.float()
    payload = torch.stack([var, second, mad, rows.mean(), pred.std() if pred.numel() > 1 else var])

    def store(values: list[float]) -> None:
        event["target_var"], event["target_second_moment"], event["target_mad"] = values[:3]
        event["target_mean"], event["prediction_std"] = values[3:5]
        event["num_targets"] = int(y.numel())

    recorder.defer(payload, store)
