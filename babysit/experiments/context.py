"""The shared context of the pre-flight experiments: the model at init, a batch, the loss,
the optimizer's settings, and the time budget."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from babysit.experiments.batch import Batch, LossSpec
from babysit.probes.losses import LossCall
from babysit.probes.model_facts import DROPOUT
from babysit.session import strip_babysit_hooks
from babysit.trace import Trace


class Skipped(Exception):
    """An experiment cannot run; the message says why (it appears in the report)."""


@dataclass(frozen=True)
class Settings:
    #: samples in the tiny batch ("a few to ~20": CS231n uses 20, Karpathy "as few as 2")
    tiny_batch: int = 8
    #: optimizer steps allowed to overfit the tiny batch
    overfit_steps: int = 150
    #: stop once the loss is below this fraction of the initial loss (and accuracy is 100 %)
    overfit_target: float = 0.05
    #: Adam's learning rate for the overfit runs; retried 10x smaller if the loss diverges.
    #: Measured steps to 5 % of the initial loss on 8 samples: 1e-3 needs 30-40 (MLPs) and
    #: 200 (a small BatchNorm CNN); 3e-3 needs 11-22 and 71.
    lr: float = 3e-3
    #: seconds for the whole protocol
    budget: float = 30.0


@dataclass
class OptimizerSpec:
    """An optimizer's class and hyperparameters, by parameter name, to rebuild on a copy."""

    cls: type[torch.optim.Optimizer]
    groups: list[tuple[dict[str, Any], list[str]]]

    @classmethod
    def of(cls, optimizer: torch.optim.Optimizer, model: nn.Module) -> OptimizerSpec:
        names = {id(p): name for name, p in model.named_parameters()}
        groups = []
        for group in optimizer.param_groups:
            hyper = {k: v for k, v in group.items() if k != "params"}
            groups.append((hyper, [names[id(p)] for p in group["params"] if id(p) in names]))
        return cls(type(optimizer), groups)

    def build(self, model: nn.Module) -> torch.optim.Optimizer:
        params = dict(model.named_parameters())
        groups = [
            {**_fresh(hyper), "params": [params[n] for n in names if n in params]}
            for hyper, names in self.groups
        ]
        return self.cls([g for g in groups if g["params"]])

    @property
    def names(self) -> set[str]:
        return {name for _, names in self.groups for name in names}

    @property
    def weight_decay(self) -> float:
        return max((float(h.get("weight_decay", 0.0) or 0.0) for h, _ in self.groups), default=0.0)

    @property
    def decoupled(self) -> bool:
        """AdamW-style decay (decoupled from the gradient) rather than an L2 term."""
        return self.cls.__name__ in ("AdamW", "SGDW", "Lion") or any(
            h.get("decoupled_weight_decay") for h, _ in self.groups
        )


def _fresh(hyper: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters as at the start of the run, without per-run state (tensor lrs become
    floats). A learning-rate scheduler rewrites ``lr`` and keeps the starting value in
    ``initial_lr``: an audit reads the optimizer after the run, when a linear decay has taken
    ``lr`` to 0, so the experiments use ``initial_lr``."""
    out = {}
    for key, value in hyper.items():
        if key == "initial_lr":
            continue
        out[key] = float(value) if isinstance(value, torch.Tensor) and value.numel() == 1 else value
    initial = hyper.get("initial_lr")
    if isinstance(initial, int | float | torch.Tensor) and "lr" in out:
        out["lr"] = float(initial)
    return out


HALF = (torch.float16, torch.bfloat16)


def _upcast_loss(loss: LossSpec) -> LossSpec:
    """The user's loss for float32 copies: half-precision class weights (``weight=``,
    ``pos_weight=``) would meet float32 predictions and make the loss raise."""
    fn = loss.loss_fn

    def up(value: Any) -> Any:
        return value.float() if isinstance(value, torch.Tensor) and value.dtype in HALF else value

    if isinstance(fn, LossCall):
        fn = dataclasses.replace(
            fn,
            extra_args=tuple(up(a) for a in fn.extra_args),
            options={k: up(v) for k, v in fn.options.items()},
        )
    elif isinstance(fn, nn.Module) and any(
        t.dtype in HALF for t in itertools.chain(fn.parameters(), fn.buffers())
    ):
        fn = copy.deepcopy(fn).float()
    else:
        return loss
    return dataclasses.replace(loss, loss_fn=fn)


@dataclass
class Context:
    model: nn.Module
    batch: Batch
    loss: LossSpec
    trace: Trace
    optimizer: OptimizerSpec | None = None
    settings: Settings = field(default_factory=Settings)
    started: float = field(default_factory=time.monotonic)
    #: a half-precision model is trained in float32 on the copies: Adam's eps (1e-8) and the
    #: tiny-batch updates underflow in fp16, which would look like a model that cannot learn
    upcast: bool = False

    def __post_init__(self) -> None:
        if any(p.dtype in HALF for p in self.model.parameters()):
            self.upcast = True
            self.batch = self.batch.map_floats(lambda t: t.float())
            self.loss = _upcast_loss(self.loss)

    def copy(self, *, dropout: bool = True) -> nn.Module:
        """A fresh copy of the model at init, in training mode, without babysit's hooks."""
        replica = copy.deepcopy(self.model)
        strip_babysit_hooks(replica)
        replica.train()
        if self.upcast:
            replica.float()
        if not dropout:
            for module in replica.modules():
                if isinstance(module, DROPOUT):
                    module.p = 0.0
        return replica

    def time_left(self) -> float:
        return self.settings.budget - (time.monotonic() - self.started)

    def require_time(self) -> None:
        if self.time_left() <= 0:
            raise Skipped(f"the protocol's time budget ({self.settings.budget:g} s) was spent")
