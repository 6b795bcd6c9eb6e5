"""The in-code ways in: ``check()`` for a pre-flight, ``watch()`` around real training."""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from babysit.errors import BabysitError
from babysit.probes.inputs import pick_input
from babysit.report import Report, judge
from babysit.rng import preserved_rng
from babysit.session import Session, strip_babysit_hooks
from babysit.trace import Trace

Selectors = Iterable[str] | str | None
Thresholds = Mapping[str, Mapping[str, Any]] | None


def check(
    model: nn.Module,
    inputs: Any,
    targets: Any = None,
    *,
    loss_fn: Callable[..., Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    select: Selectors = None,
    ignore: Selectors = None,
    thresholds: Thresholds = None,
    experiments: bool = True,
    budget: float = 30.0,
) -> Report:
    """Pre-flight: run the checks on a copy of ``model`` with one batch, before training.

    ``inputs`` is a tensor, a tuple of positional inputs, or a dict of keyword inputs. With
    ``loss_fn`` the loss is ``loss_fn(model(inputs), targets)``; without it the model's output
    must be a scalar loss or carry one as ``.loss`` / ``["loss"]`` (Hugging Face style).

    With ``experiments`` (the default) the pre-flight protocol also runs on copies: overfit a
    tiny batch with regularization off and on, one backward pass and optimizer step, batch
    mixing, input independence, and verified fixes, within ``budget`` seconds.
    ``model``, ``optimizer`` and the global RNG states are left exactly as they were.
    """
    _require_module(model)
    args, kwargs = _split_inputs(inputs)
    if loss_fn is not None and not callable(loss_fn):
        raise BabysitError(f"loss_fn must be callable (a loss module or function), got {loss_fn!r}")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise BabysitError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    if optimizer is not None:
        owned = {id(p) for p in model.parameters()}
        if not any(id(p) in owned for g in optimizer.param_groups for p in g["params"]):
            raise BabysitError(
                "the optimizer does not hold any parameter of the model: build it from "
                "model.parameters() (of this model, not of a copy)"
            )
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not budget > 0:
        raise BabysitError(f"budget must be a positive number of seconds, got {budget!r}")
    if any(p.is_meta for p in model.parameters()):
        raise BabysitError("the model has parameters on the meta device: materialize it first")
    picked = pick_input(args, kwargs)
    main = picked[1] if picked else None
    if main is not None and main.dim() > 0 and main.shape[0] == 0:
        raise BabysitError("the input batch is empty: pass at least one sample (8 or more)")
    trace = Trace(mode="check", target=type(model).__name__)
    with preserved_rng():
        try:
            replica = copy.deepcopy(model)
        except Exception as exc:
            raise BabysitError(
                f"babysit.check needs a copy of the model to experiment on, and "
                f"copy.deepcopy({type(model).__name__}) failed: {exc}. Make the model "
                "deep-copyable (no open files, locks or generators as attributes)."
            ) from exc
        strip_babysit_hooks(replica)
        replica.train()
        session = Session(trace, sample_every=1, max_input_batches=1)
        failure: BaseException | None = None
        try:
            session.start()
            session.add_model(replica, label=type(model).__name__)
            if optimizer is not None:
                trace.facts.setdefault("optimizers", []).append(_describe_optimizer(optimizer))
            with torch.enable_grad():
                output = replica(*args, **kwargs)
                _compute_loss(session, output, targets, loss_fn)
        except BabysitError:
            raise
        except Exception as exc:
            failure = exc
            trace.run["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            session.close()
        if experiments and failure is None:
            _run_experiments(trace, model, args, kwargs, targets, loss_fn, optimizer, budget)
    report = judge(trace, select=select, ignore=ignore, thresholds=thresholds)
    if failure is not None and not report.failing("error"):
        raise BabysitError(
            f"the pre-flight forward pass raised {type(failure).__name__}: {failure}. "
            "Check that `inputs` (and `targets`) are what the model and loss expect."
        ) from failure
    return report


#: Metric names that ``sitter.log`` and the trainer callbacks read as the validation loss.
VALIDATION_LOSS_KEYS = frozenset(
    {"val_loss", "valid_loss", "validation_loss", "eval_loss", "val/loss", "valid/loss"}
)


class Sitter:
    """Returned by :func:`watch`; observes a real training loop while the block runs."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None,
        *,
        sample_every: int,
        overhead_budget: float | None,
        select: Selectors,
        ignore: Selectors,
        thresholds: Thresholds,
    ) -> None:
        self.trace = Trace(mode="watch", target=type(model).__name__)
        self.session = Session(
            self.trace, sample_every=sample_every, overhead_budget=overhead_budget
        )
        self._model = model
        self._optimizer = optimizer
        self._judge_args = {"select": select, "ignore": ignore, "thresholds": thresholds}
        # validate selectors now rather than after a long training run
        judge(Trace(), **self._judge_args)

    def __enter__(self) -> Sitter:
        self.session.start()
        try:
            self.session.add_model(self._model)
            if self._optimizer is not None:
                self.session.add_optimizer(self._optimizer)
        except BaseException:
            self.session.close()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.session.close()
        if exc_type is not None:
            self.trace.run["error"] = f"{exc_type.__name__}: {exc}"

    def log(self, **metrics: float | torch.Tensor) -> None:
        """Record metrics the loop computes itself, e.g. ``sitter.log(val_loss=...)``."""
        if not metrics:
            raise BabysitError("sitter.log() needs at least one metric, e.g. log(val_loss=0.7)")
        recorder = self.session.recorder
        entry: dict[str, Any] = {"step": recorder.step}
        self.trace.metrics.append(entry)
        for key, value in metrics.items():
            if isinstance(value, torch.Tensor):
                if value.numel() != 1:
                    raise BabysitError(
                        f"metric {key!r} must be a scalar, got shape {tuple(value.shape)}"
                    )
                entry[key] = None

                def store(values: list[float], key: str = key) -> None:
                    entry[key] = values[0]

                # a copy: the loop may keep updating its tensor in place before the flush
                recorder.defer(value.detach().reshape(()).clone(), store)
            elif isinstance(value, numbers.Real):  # Python and NumPy numbers
                entry[key] = float(value)
            else:
                raise BabysitError(
                    f"metric {key!r} must be a number or a scalar tensor, "
                    f"got {type(value).__name__}"
                )
            if key.lower() in VALIDATION_LOSS_KEYS:
                self.session.record_validation(value, source="log")

    @property
    def report(self) -> Report:
        """Judge what has been recorded so far (usable mid-run and after the block)."""
        self.session.recorder.flush()
        return judge(self.trace, **self._judge_args)


def watch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    sample_every: int = 10,
    overhead_budget: float | None = 0.03,
    select: Selectors = None,
    ignore: Selectors = None,
    thresholds: Thresholds = None,
) -> Sitter:
    """Observe real training: ``with babysit.watch(model, optimizer) as sitter: ...``.

    Layer statistics are taken on the first optimizer step and then every ``sample_every``-th
    one, or less often when a sampled step would cost more than ``overhead_budget`` (a
    fraction of the training time; ``None`` samples exactly every ``sample_every`` steps).
    Other steps cost a few microseconds of hook calls and no host synchronization.
    """
    _require_module(model)
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise BabysitError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    if any(p.is_meta for p in model.parameters()):
        raise BabysitError("the model has parameters on the meta device: materialize it first")
    if not isinstance(sample_every, int) or sample_every < 1:
        raise BabysitError(f"sample_every must be a positive integer, got {sample_every!r}")
    if overhead_budget is not None and not overhead_budget > 0:
        raise BabysitError(f"overhead_budget must be > 0 or None, got {overhead_budget!r}")
    return Sitter(
        model,
        optimizer,
        sample_every=sample_every,
        overhead_budget=overhead_budget,
        select=select,
        ignore=ignore,
        thresholds=thresholds,
    )


def _require_module(model: Any) -> None:
    if not isinstance(model, nn.Module):
        raise BabysitError(
            f"model must be a torch.nn.Module, got {type(model).__name__}; pass the model "
            "itself (not its output or a state_dict)"
        )


def _split_inputs(inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if isinstance(inputs, torch.Tensor):
        return (inputs,), {}
    if isinstance(inputs, tuple | list):
        return tuple(inputs), {}
    if isinstance(inputs, Mapping):
        return (), dict(inputs)
    raise BabysitError(
        f"inputs must be a tensor, a tuple of positional inputs or a dict of keyword inputs, "
        f"got {type(inputs).__name__}"
    )


def _compute_loss(session: Session, output: Any, targets: Any, loss_fn: Any) -> None:
    if loss_fn is not None:
        loss = loss_fn(output) if targets is None else loss_fn(output, targets)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            got = f"shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else repr(loss)
            raise BabysitError(
                f"loss_fn must return a scalar tensor, got {got}: use reduction='mean' (or "
                "reduce it yourself) and return the tensor, not .item()"
            )
        if session.losses.calls_this_forward == 0:
            # a hand-written loss: its value is known, its chance level is not
            session.losses.observe_model_loss(loss)
        return
    if isinstance(output, torch.Tensor) and output.numel() == 1:
        session.losses.observe_model_loss(output)
        return
    model_loss = (
        output.get("loss") if isinstance(output, Mapping) else getattr(output, "loss", None)
    )
    if isinstance(model_loss, torch.Tensor):
        return  # the model's own forward hook recorded it
    if targets is not None:
        raise BabysitError(
            "targets were given but no loss_fn: pass loss_fn=, e.g. "
            "babysit.check(model, x, y, loss_fn=nn.CrossEntropyLoss())"
        )
    raise BabysitError(
        f"no loss: the model returned {type(output).__name__}, not a scalar loss or an object "
        "with .loss; pass targets and loss_fn=, e.g. "
        "babysit.check(model, x, y, loss_fn=nn.CrossEntropyLoss())"
    )


def _run_experiments(
    trace: Trace,
    model: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    targets: Any,
    loss_fn: Callable[..., Any] | None,
    optimizer: torch.optim.Optimizer | None,
    budget: float,
) -> None:
    from babysit.experiments import Batch, Context, LossSpec, OptimizerSpec, Settings, run_protocol

    training = trace.training_losses()
    kind = training[0]["kind"] if training else "model_output"
    loss = LossSpec(kind=kind, loss_fn=loss_fn) if loss_fn is not None else LossSpec(kind)
    ctx = Context(
        model=model,
        batch=Batch(args, kwargs, targets),
        loss=loss,
        trace=trace,
        optimizer=OptimizerSpec.of(optimizer, model) if optimizer is not None else None,
        settings=Settings(budget=budget),
    )
    run_protocol(ctx)


def _describe_optimizer(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    from babysit.probes.model_facts import describe_optimizer

    return describe_optimizer(optimizer)
