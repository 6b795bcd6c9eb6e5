"""PyTorch Lightning: ``BabysitCallback``, and the entry point that adds it by itself.

```python
from babysit.integrations.lightning import BabysitCallback

trainer = Trainer(callbacks=[BabysitCallback(fail_on="error")])
trainer.fit(model, train_loader, val_loader)     # prints babysit's report at the end
```

Under ``babysit audit`` nothing is needed: Lightning loads the ``callbacks_factory`` entry
point babysit registers (``lightning.pytorch.callbacks_factory`` and
``pytorch_lightning.callbacks_factory``), which returns a callback only while a babysit
session runs (or ``BABYSIT_AUTOSTART`` is set) and nothing otherwise.

Importing this module does not import Lightning; ``BabysitCallback`` is built on first use
for ``lightning.pytorch`` or, when only that is installed (or already imported),
``pytorch_lightning``. ``callback_class("pytorch_lightning")`` picks one explicitly.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from babysit import _autostart
from babysit.integrations._common import Babysitter
from babysit.session import current_session

NAMESPACES = ("lightning.pytorch", "pytorch_lightning")
_INSTALL = (
    "babysit's Lightning callback needs PyTorch Lightning: pip install lightning "
    "(or pytorch-lightning), or pip install 'babysit[integrations]'"
)
_classes: dict[str, type] = {}


class _LightningBabysit:
    """The callback's behaviour; mixed with the ``Callback`` class of a Lightning namespace."""

    def __init__(
        self,
        *,
        fail_on: str = "never",
        output: str | None = None,
        format: str | None = None,
        print_report: bool = True,
        sample_every: int = 10,
        overhead_budget: float | None = 0.03,
        select: Any = None,
        ignore: Any = None,
        thresholds: Any = None,
        val_loss_key: str | list[str] | None = None,
    ) -> None:
        """Babysit ``trainer.fit``: join a running babysit session (``babysit audit``, a
        ``babysit.watch`` block) or run one for the fit and report at its end.

        ``fail_on`` ("error", "warning", "info"; default "never") raises
        :class:`babysit.FindingsError` at the end of a fit with findings at or above it;
        ``output`` also writes the report to a file (format from ``format`` or the suffix);
        ``val_loss_key`` names the logged validation loss (default: the first of val_loss,
        valid_loss, val/loss, validation_loss, ... found in ``trainer.callback_metrics``).
        """
        super().__init__()
        self._autostart = _autostart.Autostart.from_env()
        self.babysitter = Babysitter(
            "lightning",
            fail_on=fail_on,
            output=output,
            format=format,
            print_report=print_report,
            sample_every=self._autostart.sample_every if self._autostart else sample_every,
            overhead_budget=self._autostart.overhead_budget if self._autostart else overhead_budget,
            select=select,
            ignore=ignore,
            thresholds=thresholds,
            val_loss_key=val_loss_key,
            autostart=self._autostart,
        )
        self._inert = False

    @property
    def report(self) -> Any:
        """The report of the last fit this callback ran its own session for (else None)."""
        return self.babysitter.report

    # -- Lightning hooks ---------------------------------------------------------------------
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        # one babysitter per trainer: an explicit callback wins over the entry point's
        first = next(c for c in trainer.callbacks if isinstance(c, _LightningBabysit))
        self._inert = first is not self
        if self._inert:
            return
        session = self.babysitter.begin(type(pl_module).__name__, rank=_rank(trainer))
        self.babysitter.add_optimizers(trainer.optimizers)
        if getattr(trainer, "world_size", 1) > 1 and not session.models:
            # Under DDP the wrapper runs at the top, in eval mode (Lightning only switches the
            # LightningModule inside it), so discovery never sees a training forward there
            session.add_model(pl_module)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if not self._inert:
            self.babysitter.add_optimizers(trainer.optimizers)  # set up after on_fit_start

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if not self._inert:
            self.babysitter.epoch_started()

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self._inert or trainer.sanity_checking:
            return
        epoch = trainer.current_epoch + 1 if _fitting(trainer) else None
        self.babysitter.validation(trainer.callback_metrics, epoch=epoch)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if not self._inert:
            self.babysitter.finish(publish=trainer.is_global_zero, rank=_rank(trainer))

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if not self._inert:
            self.babysitter.finish(
                error=exception, publish=trainer.is_global_zero, rank=_rank(trainer)
            )

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        # whatever ended the fit, our hooks never outlive it
        if not self._inert and self.babysitter.owned:
            self.babysitter.finish(publish=False, rank=_rank(trainer))


def _fitting(trainer: Any) -> bool:
    state = getattr(trainer, "state", None)
    return str(getattr(getattr(state, "fn", None), "value", "")) == "fit"


def _rank(trainer: Any) -> int:
    if getattr(trainer, "world_size", 1) > 1:
        return int(trainer.global_rank)
    return _autostart.process_rank()


def _default_namespace() -> str:
    if "pytorch_lightning" in sys.modules and "lightning" not in sys.modules:
        return "pytorch_lightning"
    for namespace in NAMESPACES:
        try:
            importlib.import_module(namespace)
        except ImportError:
            continue
        return namespace
    raise ImportError(_INSTALL)


def callback_class(namespace: str | None = None) -> type:
    """``BabysitCallback`` built on ``<namespace>.Callback`` ("lightning.pytorch" or
    "pytorch_lightning"; default: the one in use or installed)."""
    namespace = namespace or _default_namespace()
    if namespace not in NAMESPACES:
        raise ValueError(f"namespace must be one of {', '.join(NAMESPACES)}, got {namespace!r}")
    cls = _classes.get(namespace)
    if cls is None:
        try:
            base = importlib.import_module(namespace).Callback
        except ImportError as exc:
            raise ImportError(f"{_INSTALL} ({exc})") from exc
        cls = type(
            "BabysitCallback",
            (_LightningBabysit, base),
            {"__module__": __name__, "__doc__": _LightningBabysit.__init__.__doc__},
        )
        _classes[namespace] = cls
    return cls


def _wanted() -> bool:
    return current_session() is not None or _autostart.Autostart.from_env() is not None


def callbacks_factory() -> list[Any]:
    """The ``lightning.pytorch.callbacks_factory`` entry point: a callback while a babysit
    session runs or ``BABYSIT_AUTOSTART`` is set, nothing otherwise."""
    return [callback_class("lightning.pytorch")()] if _wanted() else []


def pytorch_lightning_callbacks_factory() -> list[Any]:
    """The same for the ``pytorch_lightning`` package (``pytorch_lightning.callbacks_factory``)."""
    return [callback_class("pytorch_lightning")()] if _wanted() else []


def __getattr__(name: str) -> Any:
    if name == "BabysitCallback":
        return callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
