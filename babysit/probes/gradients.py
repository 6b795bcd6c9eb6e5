"""Per-layer gradient and update statistics on sampled optimizer steps.

On a sampled step the probe copies the trainable parameters just before the primary optimizer
steps (the optimizer *pre*-hook), and right after the step reads, per parameter, ‖g‖₂, ‖g‖₁,
‖w‖₂ and ‖Δw‖₂ with fused ``torch._foreach_norm`` calls on each device. Gradients are read
after the step, not before it: under Lightning's automatic optimization the pre-hook fires
before the closure has run backward. Unsampled steps cost one attribute check.

It also watches whether gradients are reset between steps: on some steps a tensor hook on one
trainable parameter fires each time backward computes that parameter's gradient, before it is
accumulated into ``.grad``, until the primary optimizer steps. If ``.grad`` still held a value
at every one of those backward passes, nothing zeroed it (``zero_grad`` is missing). One empty
``.grad`` among them is a reset: gradient accumulation (the later micro-batches find the earlier
ones' sum), or a GAN's generator loss flowing back through the discriminator, whose gradients
are zeroed only before its own loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from babysit.probes.recorder import Recorder

#: Copy the parameters for update norms only up to this many elements (~400 MB of float32).
MAX_SNAPSHOT_ELEMENTS = 100_000_000


class GradientProbe:
    name = "gradients"

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        #: (layer name, parameter) pairs of the watched models, trainable parameters only
        self._params: list[tuple[str, nn.Parameter]] | None = None
        self._models: list[tuple[str, nn.Module]] = []
        self._snapshot: list[torch.Tensor] | None = None
        self._snapshot_step = -1
        self._noted_cap = False
        self._reset_handle: Any = None
        self._reset_step = -1
        #: (step, layer, [incoming, held] norms per backward) of the armed not-reset check
        self._reset_pending: tuple[int, str, list[torch.Tensor]] | None = None

    def add_model(self, model: nn.Module, prefix: str) -> None:
        self._models.append((prefix, model))
        self._params = None

    def _parameters(self) -> list[tuple[str, nn.Parameter]]:
        if self._params is None:
            pairs: list[tuple[str, nn.Parameter]] = []
            seen: set[int] = set()
            for prefix, model in self._models:
                for name, module in model.named_modules():
                    for param in module.parameters(recurse=False):
                        if param.requires_grad and id(param) not in seen:
                            seen.add(id(param))
                            pairs.append((prefix + name if name else prefix + "(root)", param))
            self._params = pairs
        return self._params

    # -- update ratios and gradient norms ----------------------------------------------------
    def before_step(self, optimizer: torch.optim.Optimizer) -> None:
        if not self.recorder.sampling:
            return
        params = self._owned(optimizer)
        if not params:
            return
        if sum(p.numel() for _, p in params) > MAX_SNAPSHOT_ELEMENTS:
            if not self._noted_cap:
                self._noted_cap = True
                self.recorder.trace.notes.append(
                    "the model is too large to copy its weights on sampled steps: update ratios "
                    "(‖Δw‖/‖w‖) were not measured"
                )
            return
        with torch.no_grad():
            self._snapshot = [p.detach().clone() for _, p in params]
        self._snapshot_step = self.recorder.step

    def after_step(self, optimizer: torch.optim.Optimizer) -> None:
        recorder = self.recorder
        self._finish_reset_check()
        if not recorder.sampling:
            return
        params = self._owned(optimizer)
        with_grad = [(name, p) for name, p in params if p.grad is not None]
        if not with_grad:
            return
        snapshot = self._snapshot if self._snapshot_step == recorder.step else None
        self._snapshot = None
        if snapshot is not None and len(snapshot) != len(params):
            snapshot = None
        diffs: dict[int, torch.Tensor] = {}
        if snapshot is not None:
            index = {id(p): i for i, (_, p) in enumerate(params)}
            with torch.no_grad():
                for _, p in with_grad:
                    before = snapshot[index[id(p)]]
                    before.sub_(p.detach())  # reuse the copy: Δw without a new allocation
                    diffs[id(p)] = before
        entry: dict[str, Any] = {"step": recorder.step, "layers": {}}
        recorder.trace.gradients.append(entry)
        # one fused call per device and dtype (model parallel, mixed precision)
        groups: dict[tuple[torch.device, torch.dtype], list[tuple[str, nn.Parameter]]] = {}
        for name, p in with_grad:
            groups.setdefault((p.device, p.dtype), []).append((name, p))
        with torch.no_grad():
            for group in groups.values():
                grads = [_dense(p.grad) for _, p in group]  # type: ignore[arg-type]
                weights = [p.detach() for _, p in group]
                rows = [_norms(grads, 2), _norms(grads, 1), _norms(weights, 2)]
                has_update = all(id(p) in diffs for _, p in group)
                if has_update:
                    rows.append(_norms([diffs[id(p)] for _, p in group], 2))
                recorder.defer(torch.cat(rows), _store_layers(entry, group, has_update))

    def _owned(self, optimizer: torch.optim.Optimizer) -> list[tuple[str, nn.Parameter]]:
        stepped = {id(p) for g in optimizer.param_groups for p in g["params"]}
        return [(name, p) for name, p in self._parameters() if id(p) in stepped]

    # -- gradients not reset -----------------------------------------------------------------
    def arm_reset_check(self, optimizer: torch.optim.Optimizer | None) -> None:
        """Check what ``.grad`` holds each time this step's backward reaches one parameter, until
        the primary optimizer steps (steps 1–3, then the sampled steps).

        The parameter watched is one the primary optimizer steps: a trainable parameter left
        out of the optimizer is never zeroed by ``optimizer.zero_grad()``, and that is not the
        bug this looks for."""
        recorder = self.recorder
        step = recorder.step
        if self._reset_handle is not None or step == 0 or optimizer is None:
            return
        # A missing zero_grad shows from step 1, so steps 1-3 are always checked; later ones
        # (a reset forgotten on some path, a second training phase) ride on the sampled
        # steps: on a small model a hook and two norms cost a quarter of a step
        if self._reset_step == step or not (step <= 3 or recorder.sampling):
            return
        params = self._owned(optimizer)
        if not params:
            return
        name, param = params[0]
        self._reset_step = step
        seen: list[torch.Tensor] = []

        def on_grad(incoming: torch.Tensor) -> None:
            if recorder.step != step:
                return
            held = param.grad
            norm = incoming.detach().float().norm()
            if held is None:  # zero_grad(set_to_none=True)
                seen.append(torch.stack([norm, norm.new_zeros(())]))
            else:
                seen.append(torch.stack([norm, held.detach().float().norm().to(norm.device)]))

        self._reset_handle = param.register_hook(recorder.guard(self.name, on_grad))
        self._reset_pending = (step, name, seen)

    def _finish_reset_check(self) -> None:
        """The primary optimizer stepped: record the backward that found ``.grad`` emptiest."""
        handle, self._reset_handle = self._reset_handle, None
        if handle is not None:
            handle.remove()
        pending, self._reset_pending = self._reset_pending, None
        if pending is None or not pending[2]:
            return  # no backward reached the parameter in this step
        step, name, seen = pending
        recorder = self.recorder

        def store(numbers: list[float]) -> None:
            pairs = list(zip(numbers[0::2], numbers[1::2], strict=True))
            # one reset before any of the step's backward passes is a reset
            incoming, held = min(pairs, key=lambda pair: pair[1] / max(pair[0], 1e-30))
            record = {
                "step": step,
                "layer": name,
                "incoming_norm": incoming,
                "held_norm": held,
                "backwards": len(pairs),
            }
            recorder.trace.run.setdefault("grad_reset_checks", []).append(record)

        recorder.defer(torch.cat(seen), store)

    def remove(self) -> None:
        if self._reset_handle is not None:
            self._reset_handle.remove()
            self._reset_handle = None
        self._reset_pending = None
        self._snapshot = None


def _dense(grad: torch.Tensor) -> torch.Tensor:
    """A sparse gradient (``nn.Embedding(sparse=True)``) densified: the fused norms take
    strided tensors only, and an uncoalesced gradient's values repeat rows. ``to_dense`` sums
    them on the device without the host sync that ``coalesce`` needs on CUDA."""
    grad = grad.detach()
    return grad if grad.layout == torch.strided else grad.to_dense()


def _norms(tensors: list[torch.Tensor], ord: int) -> torch.Tensor:
    """Per-tensor norms as one float32 vector. Half precision is reduced in float32: an fp16
    result overflows past 65504 (‖g‖₁ of a large layer) and bf16 keeps 3 digits; float64 is
    reduced as is (a narrowing ``dtype`` is refused) and cast after."""
    dtype = tensors[0].dtype
    if dtype in (torch.float16, torch.bfloat16, torch.float32):
        return torch.stack(torch._foreach_norm(tensors, ord, dtype=torch.float32))
    return torch.stack([n.float() for n in torch._foreach_norm(tensors, ord)])


def _store_layers(
    entry: dict[str, Any], group: list[tuple[str, nn.Parameter]], has_update: bool
) -> Callable[[list[float]], None]:
    names = [name for name, _ in group]
    sizes = [p.numel() for _, p in group]

    def store(values: list[float]) -> None:
        n = len(names)
        g2, g1, w2 = values[:n], values[n : 2 * n], values[2 * n : 3 * n]
        u2 = values[3 * n : 4 * n] if has_update else None
        layers = entry["layers"]
        for i, name in enumerate(names):
            layer = layers.setdefault(
                name, {"grad_norm": 0.0, "grad_abs_mean": 0.0, "param_norm": 0.0, "numel": 0}
            )
            # a layer's weight and bias (and the rare parameter on another device) add up
            numel = layer["numel"] + sizes[i]
            layer["grad_abs_mean"] = (layer["grad_abs_mean"] * layer["numel"] + g1[i]) / numel
            layer["numel"] = numel
            layer["grad_norm"] = (layer["grad_norm"] ** 2 + g2[i] ** 2) ** 0.5
            layer["param_norm"] = (layer["param_norm"] ** 2 + w2[i] ** 2) ** 0.5
            if u2 is not None:
                layer["update_norm"] = (layer.get("update_norm", 0.0) ** 2 + u2[i] ** 2) ** 0.5

    return store
