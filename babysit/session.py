"""The Session wires probes to models and optimizers and owns every hook babysit installs.

One Session serves all three ways in: ``check()`` drives one forward pass on a copy,
``watch()`` observes a user's loop, and ``babysit audit`` additionally discovers models and
optimizers through global hooks. Whatever happens, :meth:`Session.close` removes every hook and
restores every wrapped function; it is idempotent and runs from ``finally`` blocks.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.modules import module as module_hooks
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)
from torch.utils._pytree import tree_map

from babysit.probes.activations import ActivationProbe, first_tensor
from babysit.probes.batchnorm import BatchNormProbe
from babysit.probes.epochs import EpochProbe
from babysit.probes.eval_mode import EvalModeProbe
from babysit.probes.gradients import GradientProbe
from babysit.probes.inputs import InputProbe
from babysit.probes.loaders import LoaderProbe
from babysit.probes.losses import LossProbe
from babysit.probes.model_facts import describe_model, describe_optimizer, unwrap
from babysit.probes.recorder import Recorder, Schedule, StopRun, eager
from babysit.trace import Trace

#: Sessions that are running, innermost last: trainer callbacks attach to the active one.
_ACTIVE: list[Session] = []

#: Steps of other optimizers, with none of the primary's in between, after which the one that
#: steps becomes the primary. A GAN's optimizers alternate (1 each), a WGAN's critic steps 5
#: times per generator step (the critic then keeps the clock); a phase that ends never steps
#: again.
PRIMARY_HANDOVER = 3


def current_session() -> Session | None:
    """The innermost running session (an audit or a ``watch`` block), or None."""
    return _ACTIVE[-1] if _ACTIVE else None


class ModelWatch:
    """The probes attached to one model, and its root hooks."""

    def __init__(
        self,
        session: Session,
        model: nn.Module,
        label: str,
        *,
        compiled: bool = False,
        prefix: str = "",
        wrapper: nn.Module | None = None,
    ) -> None:
        self.session = session
        self.model = model
        self.label = label
        # A compiled model's root hooks go on torch.compile's wrapper, outside the graph: on the
        # inner module Dynamo would trace them. Its sampled forwards run eagerly (a compiler
        # stance), so the leaf hooks come and go as for any model and no graph ever holds them.
        self.hook_target = wrapper if wrapper is not None else model
        self._eager_sampled = compiled and hasattr(torch.compiler, "set_stance")
        self._stance: Any = None
        recorder = session.recorder
        self.facts = describe_model(model, recorder, label, prefix)
        self.facts["layer_prefix"] = prefix
        # torch.compile recompiles when hooks come and go: keep them attached for it
        self.activations = ActivationProbe(
            recorder, model, persistent=compiled and not self._eager_sampled, prefix=prefix
        )
        self.inputs = InputProbe(recorder, model, max_batches=session.max_input_batches)
        self.batchnorm = BatchNormProbe(
            recorder,
            model,
            session.loaders.current_loader,
            prefix=prefix,
            compiled=self._eager_sampled,
        )
        self.eval_mode = EvalModeProbe(recorder, model, prefix)
        self.observe_eval_mode = recorder.guard("eval_mode", self.eval_mode.observe)
        self._arm_reset_check = recorder.guard("gradients", session.gradients.arm_reset_check)
        session.gradients.add_model(model, prefix)
        self.handles: list[torch.utils.hooks.RemovableHandle] = [
            self.hook_target.register_forward_pre_hook(
                eager(recorder.guard("model", self.root_pre)), with_kwargs=True
            ),
        ]
        # The post-hook is needed while recording, while the first batch is being captured,
        # and for models that return their own loss; other forwards go without it.
        self._post = eager(recorder.guard("model", self.root_post))
        self._post_handle: Any = None
        self.returns_loss: bool | None = None  # unknown until the first training forward
        self.forward_step = -1  # the step of the last recorded training forward
        self._batch_size = -1  # the last batch size recorded in trace.steps
        # each sub-probe fails alone: a bug in one must not silence the others
        self.observe_inputs = recorder.guard("inputs", self.inputs.observe)

    def root_pre(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        session = self.session
        recorder = session.recorder
        session.losses.calls_this_forward = 0
        session.losses.training_calls_this_forward = 0
        if not (self.model.training and torch.is_grad_enabled()):
            session.losses.model_training = False
            recorder.series("eval_forward", True)
            session.epochs.eval_forward()
            if not torch.is_grad_enabled():
                self.observe_eval_mode()
            return
        session.losses.model_training = True
        session.on_training_forward()
        first_of_step = self.forward_step != recorder.step
        self.forward_step = recorder.step
        session.loaders.mark_training()
        batch = args[0] if args and isinstance(args[0], torch.Tensor) else first_tensor(kwargs)
        if (
            batch is not None
            and batch.dim() > 0
            and (batch.shape[0] != self._batch_size or recorder.sampling)
        ):
            # recorded when it changes (a trailing partial batch) and on sampled steps, as
            # the learning rate is; readers carry it forward
            self._batch_size = int(batch.shape[0])
            recorder.series("batch_size", self._batch_size)
        if session.capture_batch and session.first_batch is None:
            session.capture_init(self.model, args, kwargs)
        recording = recorder.sampling and first_of_step
        if first_of_step:
            self._arm_reset_check(session.primary)
        if recording:
            self.observe_inputs(args, kwargs)
            if self._eager_sampled and self._stance is None:
                self._stance = torch.compiler.set_stance("force_eager")  # until root_post
                self.batchnorm.attach()
            self.activations.begin()
        elif self._eager_sampled and batch is not None and batch.dim() > 0:
            self.batchnorm.observe_compiled(int(batch.shape[0]))
        self._need_post(
            recording
            or self.returns_loss is not False
            or (session.capture_batch and session.losses.first_call is None)
        )

    def _need_post(self, needed: bool) -> None:
        if needed and self._post_handle is None:
            self._post_handle = _register_post_hook(self.hook_target, self._post)
        elif not needed and self._post_handle is not None:
            self._post_handle.remove()
            self._post_handle = None

    def root_post(self, module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        self._compile_again()
        self.activations.end()
        session = self.session
        loss = _model_loss(output)
        if self.model.training and torch.is_grad_enabled():
            self.returns_loss = self.returns_loss or loss is not None
        if loss is not None:
            session.losses.observe_model_loss(loss)
            if session.snapshot is not None and session.snapshot[0] is self.model:
                session.model_returns_loss = True
        if (
            session.capture_batch
            and session.losses.first_call is None
            and session.snapshot is not None
            and session.snapshot[0] is self.model
            and self.model.training
            and torch.is_grad_enabled()
        ):
            # held only until the first loss call says how it used the output
            session.first_output = output

    def _compile_again(self) -> None:
        stance, self._stance = self._stance, None
        if stance is not None:
            stance.__exit__(None, None, None)  # the stance the user had
            self.batchnorm.detach()

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        self._need_post(False)
        self._compile_again()
        self.activations.remove()
        self.batchnorm.remove()


class Session:
    def __init__(
        self,
        trace: Trace,
        *,
        sample_every: int = 10,
        overhead_budget: float | None = None,
        max_steps: int | None = None,
        max_time: float | None = None,
        max_epochs: int | None = None,
        max_input_batches: int = 4,
        discover: bool = False,
        capture_batch: bool = False,
    ) -> None:
        self.trace = trace
        self.recorder = Recorder(trace, Schedule(every=sample_every, budget=overhead_budget))
        self.max_steps = max_steps or None
        self.max_time = max_time or None
        self.max_epochs = max_epochs or None
        self.max_input_batches = max_input_batches
        self.discover = discover
        self.capture_batch = capture_batch
        self.first_batch: tuple[Any, Any] | None = None
        #: (the user's model, a deep copy of it taken at its first training forward)
        self.snapshot: tuple[nn.Module, nn.Module] | None = None
        self.first_output: Any = None
        self.model_returns_loss = False
        self.losses = LossProbe(self.recorder)
        self.losses.on_first_call = self._match_first_loss
        self.losses.capture_first = capture_batch
        self.loaders = LoaderProbe(self.recorder)
        self.epochs = EpochProbe(self.recorder)
        self.losses.epochs = self.epochs
        self.losses.held_out = self.loaders.iterating_held_out
        self.loaders.on_training_epoch = self._loader_epoch
        self.loaders.on_other_iteration = self.epochs.end_pass
        self.gradients = GradientProbe(self.recorder)
        self.models: dict[int, ModelWatch] = {}
        self.optimizers: dict[int, torch.optim.Optimizer] = {}
        self.primary: torch.optim.Optimizer | None = None
        self._steps_without_primary = 0  # other optimizers' steps since the primary's last
        self._trainers: set[int] = set()  # optimizers that step a watched model's parameters
        self._optimizer_facts: dict[int, dict[str, Any]] = {}
        self._handles: list[Any] = []
        self._pre_step: Callable[..., Any] | None = None
        self._pre_handle: Any = None  # the optimizer pre-step hook, attached on sampled steps
        self._last_lr: Any = None
        self._depth = 0
        self._discovery_call: nn.Module | None = None
        self._training_forwards = 0
        self._started = False
        self._closed = False
        self._t0 = time.monotonic()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Session:
        if self._started:
            return self
        self._started = True
        self._t0 = time.monotonic()
        try:
            self.losses.install()
            self.loaders.install()
            guard = self.recorder.guard
            self._pre_step = eager(guard("gradients", self._before_step))
            self._arm_pre_step()
            self._handles.append(
                register_optimizer_step_post_hook(eager(guard("optimizer", self._after_step)))
            )
            if self.discover:
                self._handles.append(
                    module_hooks.register_module_forward_pre_hook(
                        guard("discovery", self._global_pre)
                    )
                )
                self._handles.append(
                    _register_global_post_hook(guard("discovery", self._global_post))
                )
        except BaseException:
            self.close()
            raise
        _ACTIVE.append(self)
        return self

    def close(self) -> Trace:
        """Flush, remove every hook and wrapper, and finish the trace. Safe to call twice."""
        if self._closed:
            return self.trace
        self._closed = True
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        errors: list[BaseException] = []
        _collect(self.epochs.close, errors)
        _collect(self.gradients.remove, errors)
        for undo in (self.losses.remove, self.loaders.remove):
            _collect(undo, errors)
        for handle in self._handles:
            _collect(handle.remove, errors)
        self._handles.clear()
        if self._pre_handle is not None:
            _collect(self._pre_handle.remove, errors)
            self._pre_handle = None
        for watch in self.models.values():
            _collect(watch.remove, errors)
        _collect(self.recorder.flush, errors)
        for exc in errors:
            self.recorder.record_error("cleanup", exc)
        run = self.trace.run
        run.setdefault("steps", self.recorder.step)
        run["optimizer_steps"] = self.recorder.step if self.primary is not None else 0
        run["training_forwards"] = self._training_forwards
        run["sampled_steps"] = self.recorder.sampled_steps + (1 if self.recorder.sampling else 0)
        run["seconds"] = round(time.monotonic() - self._t0, 3)
        first = self.trace.training_losses()
        if first:
            self.trace.facts["loss"] = {"kind": first[0]["kind"]}
        return self.trace

    def __enter__(self) -> Session:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what to watch ----------------------------------------------------------------------
    def add_model(self, model: nn.Module, label: str | None = None) -> ModelWatch:
        compiled = getattr(model, "_orig_mod", None) is not None
        wrapper, model = model, unwrap(model)
        existing = self.models.get(id(model))
        if existing:
            return existing
        label = label or type(model).__name__
        # the first model keeps its own layer names; later ones (a GAN's discriminator, a
        # head trained on a frozen backbone) are prefixed so their statistics never mix
        prefix = f"{label}#{len(self.models) + 1}." if self.models else ""
        watch = ModelWatch(
            self,
            model,
            label,
            compiled=compiled,
            prefix=prefix,
            wrapper=wrapper if compiled else None,
        )
        try:  # the weight statistics at init: one sync now, not in step 0
            self.recorder.flush()
        except Exception as exc:  # e.g. meta tensors; never break the user's program
            self.recorder.record_error("model facts", exc)
        self.models[id(model)] = watch
        models = self.trace.facts.setdefault("models", [])
        models.append(watch.facts)
        self.trace.facts.setdefault("model", watch.facts)
        return watch

    def add_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        if id(optimizer) in self.optimizers:
            return
        self.optimizers[id(optimizer)] = optimizer
        facts = describe_optimizer(optimizer)
        # which watched models it trains: a GAN's optimizers each train a different model
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        facts["models"] = [
            index
            for index, watch in enumerate(self.models.values())
            if any(id(p) in held for p in watch.model.parameters())
        ]
        self.trace.facts.setdefault("optimizers", []).append(facts)
        self._optimizer_facts[id(optimizer)] = facts
        if facts["models"]:
            self._trainers.add(id(optimizer))
        if self.primary is None:
            self.primary = optimizer

    def capture_init(self, model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Keep the first training batch and the model as it is before any update: the
        pre-flight experiments of ``babysit audit`` run on them after the script."""
        self._keep_batch(args, kwargs)
        try:
            replica = copy.deepcopy(model)
        except Exception as exc:
            self.trace.notes.append(f"the model could not be copied for experiments: {exc}")
            return
        strip_babysit_hooks(replica)
        self.snapshot = (model, replica)

    def _keep_batch(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.first_batch = _snapshot(args, kwargs)
        self.trace.facts["first_batch"] = _describe_batch(args, kwargs)

    def _match_first_loss(self, call: Any, prediction: torch.Tensor) -> None:
        if self.first_output is not None:
            from babysit.experiments.batch import match_output

            call.output_path = match_output(self.first_output, prediction)
        self.first_output = None

    def on_training_forward(self) -> None:
        """Without any optimizer (manual updates), each training forward is a step."""
        if self.primary is None and self._training_forwards > 0:
            self.recorder.advance()
            self._arm_pre_step()
            self._check_budget()
        self._training_forwards += 1

    # -- what trainers report --------------------------------------------------------------
    def record_validation(
        self,
        val_loss: float | torch.Tensor,
        *,
        source: str,
        epoch: int | None = None,
        step: int | None = None,
    ) -> None:
        """A validation loss reported by a trainer or the user (``sitter.log(val_loss=...)``)."""
        self.epochs.end_pass()
        entry: dict[str, Any] = {
            "step": self.recorder.step if step is None else int(step),
            "epoch": epoch if epoch is not None else (self.epochs.epoch or None),
            "source": source,
            "val_loss": None,
        }
        self.trace.evals.append(entry)
        if isinstance(val_loss, torch.Tensor):

            def store(values: list[float]) -> None:
                entry["val_loss"] = values[0]

            # a copy: the caller may keep updating its tensor in place before the flush
            self.recorder.defer(val_loss.detach().reshape(1).to(torch.float32, copy=True), store)
        else:
            entry["val_loss"] = float(val_loss)

    def record_epoch(self, *, source: str) -> None:
        """A trainer says a training epoch begins (used when no DataLoader marks epochs);
        babysit numbers the epochs itself."""
        if self.epochs.source in (None, source):
            self._check_epochs()
        self.epochs.start_epoch(source)

    def _loader_epoch(self) -> None:
        self._check_epochs()
        self.epochs.start_epoch("loader")

    def _check_epochs(self) -> None:
        """``--max-epochs``: stop when one more epoch would start."""
        if self.max_epochs and self.epochs.epoch >= self.max_epochs:
            self.epochs.close()
            self.trace.run["stopped_by"] = f"max_epochs ({self.max_epochs})"
            raise StopRun(self.trace.run["stopped_by"])

    # -- hooks -------------------------------------------------------------------------------
    def _before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if optimizer is self.primary:
            self.gradients.before_step(optimizer)

    def _after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.first_output = None  # never hold a step's graph past its optimizer step
        if id(optimizer) not in self.optimizers:
            if not (self.discover or self._shares_parameters(optimizer)):
                return
            self.add_optimizer(optimizer)
        facts = self._optimizer_facts[id(optimizer)]  # when it stepped: phases or interleaved
        facts.setdefault("first_step", self.recorder.step)
        facts["last_step"] = self.recorder.step
        if optimizer is not self.primary:
            self._steps_without_primary += 1
            # an inner optimizer over inputs (adversarial perturbations) never takes over
            if (
                self._steps_without_primary < PRIMARY_HANDOVER
                or id(optimizer) not in self._trainers
            ):
                return
            # the primary stopped stepping (a finished first phase, an optimizer rebuilt every
            # epoch): the optimizer that steps now keeps the step clock
            self.primary = optimizer
            self.trace.run["primary_optimizer_changes"] = (
                self.trace.run.get("primary_optimizer_changes", 0) + 1
            )
        self._steps_without_primary = 0
        self.epochs.end_pass()
        self.gradients.after_step(optimizer)
        lr = optimizer.param_groups[0].get("lr") if optimizer.param_groups else None
        if isinstance(lr, torch.Tensor):
            # a tensor lr is updated in place by schedulers: copy this step's value
            self.recorder.series("lr", lr.detach().clone())
        elif lr is not None and (lr != self._last_lr or self.recorder.sampling):
            # recorded when it changes (and on sampled steps); readers carry it forward
            self._last_lr = lr
            self.recorder.series("lr", float(lr))
        self.recorder.advance()
        self._arm_pre_step()
        self._check_budget()

    def _arm_pre_step(self) -> None:
        """Attach the optimizer pre-step hook for sampled steps only: it copies the weights
        for the update ratios and has nothing to do on the others (it would cost every step
        a call chain through the guard and the compile check)."""
        needed = self.recorder.sampling and self._pre_step is not None
        if needed and self._pre_handle is None:
            self._pre_handle = register_optimizer_step_pre_hook(self._pre_step)
        elif not needed and self._pre_handle is not None:
            self._pre_handle.remove()
            self._pre_handle = None

    def _check_budget(self) -> None:
        if self.max_steps and self.recorder.step >= self.max_steps:
            self.trace.run["stopped_by"] = f"max_steps ({self.max_steps})"
            raise StopRun(self.trace.run["stopped_by"])
        if self.max_time and time.monotonic() - self._t0 >= self.max_time:
            self.trace.run["stopped_by"] = f"max_time ({self.max_time:g} s)"
            raise StopRun(self.trace.run["stopped_by"])

    def _shares_parameters(self, optimizer: torch.optim.Optimizer) -> bool:
        watched = {id(p) for w in self.models.values() for p in w.model.parameters()}
        return any(id(p) in watched for g in optimizer.param_groups for p in g["params"])

    def _global_pre(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        depth = self._depth
        self._depth += 1
        if depth != 0 or id(module) in self.models or id(unwrap(module)) in self.models:
            return
        if not (module.training and torch.is_grad_enabled()):
            return
        if not any(p.requires_grad for p in module.parameters()):
            return  # a loss module, a parameter-free transform or a frozen feature extractor
        if getattr(module, "_orig_mod", None) is not None:
            self.trace.notes.append(
                "a torch.compile'd model was seen; its sampled steps ran eagerly (layer "
                "statistics), the others compiled"
            )
        watch = self.add_model(module)
        if watch.hook_target is module:
            # the model's own pre-hook was attached during this call and will not fire for it;
            # a global pre-hook sees no keyword arguments, the global post-hook will
            watch.root_pre(module, args, {})
            self._discovery_call = module

    def _global_post(self, module: nn.Module, *rest: Any) -> None:
        self._depth = max(self._depth - 1, 0)
        if module is self._discovery_call:
            self._discovery_call = None
            if len(rest) == 3 and rest[1]:  # (args, kwargs, output): a keyword-called model
                self._keep_batch(rest[0], rest[1])


def _collect(fn: Callable[[], Any], errors: list[BaseException]) -> None:
    try:
        fn()
    except Exception as exc:  # keep removing the rest
        errors.append(exc)


def _register_post_hook(model: nn.Module, hook: Callable[..., Any]) -> Any:
    try:
        return model.register_forward_hook(hook, with_kwargs=True, always_call=True)
    except TypeError:  # torch < 2.1: no always_call
        return model.register_forward_hook(hook, with_kwargs=True)


def _register_global_post_hook(hook: Callable[..., Any]) -> Any:
    try:
        return module_hooks.register_module_forward_hook(hook, with_kwargs=True, always_call=True)
    except TypeError:  # older torch: no keyword arguments for global hooks
        return module_hooks.register_module_forward_hook(hook)


def _model_loss(output: Any) -> torch.Tensor | None:
    loss = output.get("loss") if isinstance(output, dict) else getattr(output, "loss", None)
    if isinstance(loss, torch.Tensor) and loss.numel() == 1:
        return loss
    return None


def _describe_batch(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    def describe(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return {"shape": list(value.shape), "dtype": str(value.dtype).replace("torch.", "")}
        return type(value).__name__

    return {
        "args": [describe(a) for a in args],
        "kwargs": {k: describe(v) for k, v in kwargs.items()},
    }


def _snapshot(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    def copy(value: Any) -> Any:
        return value.detach().clone() if isinstance(value, torch.Tensor) else value

    with contextlib.suppress(Exception):
        return tree_map(copy, args), tree_map(copy, kwargs)
    return args, kwargs


def strip_babysit_hooks(model: nn.Module) -> None:
    """deepcopy carries forward hooks along; drop babysit's so the copy feeds no live trace."""
    for module in model.modules():
        for hooks in (module._forward_hooks, module._forward_pre_hooks):
            for key, hook in list(hooks.items()):
                if getattr(hook, "__module__", "").startswith("babysit"):
                    del hooks[key]
