"""babysit: the training babysitter for PyTorch.

Three ways in, one set of checks:

* ``babysit.check(model, inputs, targets, loss_fn=...)`` - pre-flight on a copy of the model;
* ``with babysit.watch(model, optimizer) as sitter:`` - around real training;
* ``babysit audit train.py -- ARGS`` - an unmodified script, from the command line.
"""

from __future__ import annotations

from babysit._version import __version__
from babysit.api import Sitter, check, watch
from babysit.check import Check, Finding, Location, Severity
from babysit.errors import BabysitError, FindingsError
from babysit.report import Report, judge
from babysit.trace import Trace

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
