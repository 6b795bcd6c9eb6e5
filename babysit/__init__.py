"""babysit: the training babysitter for PyTorch.

Three ways in, one set of checks:

* ``babysit.check(model, inputs, targets, loss_fn=...)`` - pre-flight on a copy of the model;
* ``with babysit.watch(model, optimizer) as sitter:`` - around real training;
* ``babysit audit train.py -- ARGS`` - an unmodified script, from the command line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from babysit._version import __version__
from babysit.check import Check, Finding, Location, Severity
from babysit.errors import BabysitError, FindingsError
from babysit.report import Report, judge
from babysit.trace import Trace

if TYPE_CHECKING:
    from babysit.api import Sitter, check, watch

# `babysit.api` imports torch (~2 s). It loads on first use so that light entry points (the
# pytest plugin, which pytest imports in every run, and `babysit lint`) stay light.
# Importing the `babysit.check` submodule above bound the name `check` to it; drop it so that
# `babysit.check` resolves to the function below.
globals().pop("check", None)
_LAZY = {"Sitter": "babysit.api", "check": "babysit.api", "watch": "babysit.api"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'babysit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BabysitError",
    "Check",
    "Finding",
    "FindingsError",
    "Location",
    "Report",
    "Severity",
    "Sitter",
    "Trace",
    "__version__",
    "check",
    "judge",
    "watch",
]
