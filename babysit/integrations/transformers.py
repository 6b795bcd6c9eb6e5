"""Hugging Face ``Trainer``: ``BabysitCallback``.

```python
from babysit.integrations.transformers import BabysitCallback

trainer = Trainer(model=model, args=args, ..., callbacks=[BabysitCallback(fail_on="error")])
trainer.train()                                  # prints babysit's report at the end
```

Under ``babysit audit`` nothing is needed and nothing is patched: the ``Trainer`` calls the
model (found by the audit's discovery hooks), computes the loss with ``torch.nn.functional``
(or returns ``outputs.loss``), steps a ``torch.optim`` optimizer and iterates a ``DataLoader``,
so the audit records steps, epochs and every evaluation pass (``model.eval()`` under
``torch.no_grad()``) the same way as for a plain loop. A ``BabysitCallback`` added by hand
under the audit joins its session and adds the ``eval_loss`` the Trainer reports.

Importing this module does not import ``transformers``; ``BabysitCallback`` is built on first
use. If ``train()`` raises, HF calls no callback: the hooks of the callback's own session stay
until its next ``on_train_begin`` or :meth:`close`.
"""

from __future__ import annotations

import importlib
from typing import Any

from babysit.integrations._common import Babysitter, epoch_number

_INSTALL = (
    "babysit's Hugging Face callback needs transformers: pip install transformers accelerate, "
    "or pip install 'babysit[integrations]'"
)
_class: type | None = None


class _TransformersBabysit:
    """The callback's behaviour; mixed with ``transformers.TrainerCallback``."""

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
        val_loss_key: str | list[str] | None = "eval_loss",
    ) -> None:
        """Babysit ``trainer.train()``: join a running babysit session (``babysit audit``, a
        ``babysit.watch`` block) or run one for the training and report at its end.

        ``fail_on`` ("error", "warning", "info"; default "never") raises
        :class:`babysit.FindingsError` at the end of training with findings at or above it;
        ``output`` also writes the report to a file (format from ``format`` or the suffix);
        ``val_loss_key`` is the metric of ``on_evaluate`` to record (default "eval_loss";
        "eval_<name>_loss" for one of several evaluation sets).
        """
        super().__init__()
        self.babysitter = Babysitter(
            "transformers",
            fail_on=fail_on,
            output=output,
            format=format,
            print_report=print_report,
            sample_every=sample_every,
            overhead_budget=overhead_budget,
            select=select,
            ignore=ignore,
            thresholds=thresholds,
            val_loss_key=val_loss_key,
        )

    @property
    def report(self) -> Any:
        """The report of the last training this callback ran its own session for (else None)."""
        return self.babysitter.report

    def close(self) -> None:
        """Remove the hooks of this callback's own session (after ``train()`` raised)."""
        self.babysitter.finish(publish=False)

    # -- TrainerCallback events --------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.close()  # a previous train() that raised left its session open
        model = kwargs.get("model")
        self.babysitter.begin(type(model).__name__ if model is not None else "Trainer", model)
        self.babysitter.add_optimizers([kwargs.get("optimizer")])

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.babysitter.epoch_started()

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.babysitter.validation(kwargs.get("metrics") or {}, epoch=epoch_number(state.epoch))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.babysitter.finish(
            publish=bool(getattr(state, "is_world_process_zero", True)),
            rank=int(getattr(args, "process_index", 0) or 0),
        )


def callback_class() -> type:
    """``BabysitCallback``: built on ``transformers.TrainerCallback`` at first use."""
    global _class
    if _class is None:
        try:
            base = importlib.import_module("transformers").TrainerCallback
        except ImportError as exc:
            raise ImportError(f"{_INSTALL} ({exc})") from exc
        _class = type(
            "BabysitCallback",
            (_TransformersBabysit, base),
            {"__module__": __name__, "__doc__": _TransformersBabysit.__init__.__doc__},
        )
    return _class


def __getattr__(name: str) -> Any:
    if name == "BabysitCallback":
        return callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
