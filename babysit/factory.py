"""Loading ``MODULE:FACTORY`` for ``babysit check``: a function that builds what to pre-flight.

A factory takes no arguments and returns one of::

    return model, (inputs, targets), loss_fn
    return model, (inputs, targets), loss_fn, optimizer
    return {"model": model, "inputs": inputs, "targets": targets, "loss_fn": loss_fn,
            "optimizer": optimizer}  # or "batch": (inputs, targets); optimizer is optional

Everything here is validated with an error that says what to write instead; an exception
raised by the user's own code (importing the module, calling the factory) becomes
:class:`FactoryFailed`, which carries the user's traceback without babysit's frames.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import random
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from babysit.errors import BabysitError

EXPECTED_SHAPES = """\
A factory takes no arguments and returns one of:
    return model, (inputs, targets), loss_fn
    return model, (inputs, targets), loss_fn, optimizer
    return {"model": model, "inputs": inputs, "targets": targets, "loss_fn": loss_fn}
(the dict may also hold "optimizer", and "batch": (inputs, targets) instead of inputs/targets)
Example:
    def make_model():
        model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 10))
        x, y = torch.randn(64, 20), torch.randint(0, 10, (64,))
        return model, (x, y), nn.CrossEntropyLoss()"""

_DICT_KEYS = ("model", "inputs", "targets", "batch", "loss_fn", "optimizer")
# Frames of babysit and of the import machinery are noise in the user's traceback.
_HIDDEN_DIRS = tuple(str(Path(p).resolve().parent) + os.sep for p in (__file__, importlib.__file__))


class FactoryFailed(BabysitError):
    """The user's code raised while importing the module or calling the factory.

    ``traceback`` is the formatted traceback, trimmed to the user's frames. The CLI treats
    this like a failing script (exit code 4), not as a usage error.
    """

    def __init__(self, message: str, traceback_text: str) -> None:
        super().__init__(message)
        self.traceback = traceback_text


@dataclass(frozen=True)
class Problem:
    """What a factory returned, validated: the arguments of :func:`babysit.check`."""

    model: nn.Module
    inputs: Any
    targets: Any
    loss_fn: Callable[..., Any] | None
    optimizer: torch.optim.Optimizer | None
    #: The file that defines the factory: where CI annotations of the findings point.
    source: str | None = None


def load(spec: str, *, seed: int | None = 0) -> Problem:
    """Import ``MODULE:FACTORY``, call the factory, and validate what it returned.

    ``MODULE`` is a dotted module name or a path to a ``.py`` file; the current directory
    (and a file's own folder) is put on ``sys.path`` first, as ``python -m`` and ``python
    FILE`` would. With ``seed``, torch's and Python's RNGs are seeded before the factory is
    called, so a random init gives the same verdict on every CI run.
    """
    factory = load_factory(spec)
    problem = call_factory(factory, spec, seed=seed)
    return replace(problem, source=_source_file(factory))


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``MODULE:FACTORY`` (the last colon, so ``C:\\models.py:make`` works too)."""
    module, sep, attribute = str(spec).rpartition(":")
    if not sep or not module or not attribute:
        raise BabysitError(
            f"expected MODULE:FACTORY, got {spec!r}; for example `tests/models.py:make_model` "
            "or `mypackage.models:make_model`"
        )
    return module, attribute


def load_factory(spec: str) -> Callable[[], Any]:
    """The callable named by ``spec``, after importing its module."""
    module_name, attribute = parse_spec(spec)
    module = _import(module_name)
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise BabysitError(f"{module_name} has no attribute {attribute!r}{_candidates(module)}")
        target = getattr(target, part)
    if not callable(target):
        raise BabysitError(
            f"{spec} is {_describe(target)}, not a function: name a function that "
            "builds the model, the batch and the loss.\n" + EXPECTED_SHAPES
        )
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # some builtins and C callables have no signature
        return target
    required = [
        p.name
        for p in signature.parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if required:
        raise BabysitError(
            f"{spec} needs argument(s) {', '.join(required)}; babysit calls the factory "
            "without arguments: give them defaults or wrap it in a function that takes none"
        )
    return target


def call_factory(
    factory: Callable[[], Any], spec: str = "the factory", *, seed: int | None = 0
) -> Problem:
    """Call ``factory()`` and validate its return value into a :class:`Problem`."""
    if seed is not None:
        random.seed(seed)
        torch.manual_seed(seed)
    try:
        value = factory()
    except (Exception, SystemExit) as exc:  # sys.exit() in user code too
        raise FactoryFailed(
            f"{spec} raised {type(exc).__name__}: {exc}", user_traceback(exc)
        ) from exc
    return validate(value, spec)


def validate(value: Any, spec: str = "the factory") -> Problem:
    """Check the shape and types of a factory's return value."""
    if isinstance(value, Mapping):
        return _from_mapping(value, spec)
    if isinstance(value, tuple | list) and len(value) in (3, 4):
        model, batch, loss_fn, *rest = value
        inputs, targets = _split_batch(batch, spec, "the second item")
        return _problem(model, inputs, targets, loss_fn, rest[0] if rest else None, spec)
    got = _describe(value)
    raise BabysitError(f"{spec} returned {got}.\n{EXPECTED_SHAPES}")


def user_traceback(exc: BaseException) -> str:
    """The formatted traceback of ``exc`` without babysit's and importlib's frames."""
    report = traceback.TracebackException.from_exception(exc)
    _trim(report, set())
    return "".join(report.format())


def _import(name: str) -> ModuleType:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    if name.endswith(".py") or "/" in name or os.sep in name:
        return _import_file(Path(name))
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise BabysitError(
                f"no module named {name!r} (searched the current directory and sys.path); "
                "pass a dotted module name importable from here, or a path such as "
                "`tests/models.py`"
            ) from None
        raise _failed_import(name, exc) from exc
    except (Exception, SystemExit) as exc:  # sys.exit() in user code too
        raise _failed_import(name, exc) from exc


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise BabysitError(f"no such file: {path}")
    if path.suffix != ".py":
        raise BabysitError(f"{path} is not a Python file (.py)")
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # sibling imports work as under `python FILE`
    # Register under the file's own name when free, so dataclasses and pickle find the module.
    name = path.stem if path.stem.isidentifier() and path.stem not in sys.modules else None
    name = name or f"_babysit_factory_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BabysitError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # sys.exit() in user code too
        del sys.modules[name]
        raise _failed_import(str(path), exc) from exc
    return module


def _failed_import(name: str, exc: BaseException) -> FactoryFailed:
    return FactoryFailed(
        f"importing {name} raised {type(exc).__name__}: {exc}", user_traceback(exc)
    )


def _from_mapping(value: Mapping[Any, Any], spec: str) -> Problem:
    unknown = [k for k in value if k not in _DICT_KEYS]
    if unknown:
        raise BabysitError(
            f"{spec} returned a dict with unknown key(s) {unknown}; "
            f"the keys are: {', '.join(_DICT_KEYS)}.\n{EXPECTED_SHAPES}"
        )
    if "model" not in value:
        raise BabysitError(f"{spec} returned a dict without 'model'.\n{EXPECTED_SHAPES}")
    if "batch" in value:
        if "inputs" in value or "targets" in value:
            raise BabysitError(
                f"{spec} returned both 'batch' and 'inputs'/'targets': give one or the other"
            )
        inputs, targets = _split_batch(value["batch"], spec, "'batch'")
    elif "inputs" in value:
        inputs, targets = value["inputs"], value.get("targets")
    else:
        raise BabysitError(
            f"{spec} returned a dict without 'inputs' (or 'batch').\n{EXPECTED_SHAPES}"
        )
    return _problem(
        value["model"], inputs, targets, value.get("loss_fn"), value.get("optimizer"), spec
    )


def _split_batch(batch: Any, spec: str, where: str) -> tuple[Any, Any]:
    if isinstance(batch, tuple | list) and len(batch) == 2:
        return batch[0], batch[1]
    hint = ""
    if isinstance(batch, torch.Tensor):
        hint = " (only the inputs? return model, (inputs, targets), loss_fn)"
    raise BabysitError(
        f"{where} of what {spec} returned must be the batch (inputs, targets), got "
        f"{_describe(batch)}{hint}.\n{EXPECTED_SHAPES}"
    )


def _problem(
    model: Any, inputs: Any, targets: Any, loss_fn: Any, optimizer: Any, spec: str
) -> Problem:
    if not isinstance(model, nn.Module):
        raise BabysitError(
            f"the model {spec} returned is {_describe(model)}, not a torch.nn.Module.\n"
            + EXPECTED_SHAPES
        )
    if loss_fn is not None and (isinstance(loss_fn, torch.Tensor) or not callable(loss_fn)):
        raise BabysitError(
            f"the loss_fn {spec} returned is {_describe(loss_fn)}; return the loss function "
            "or module itself (nn.CrossEntropyLoss(), F.cross_entropy), not a loss value"
        )
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise BabysitError(
            f"the optimizer {spec} returned is {_describe(optimizer)}, not a "
            "torch.optim.Optimizer (build it from model.parameters())"
        )
    return Problem(model, inputs, targets, loss_fn, optimizer)


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a Tensor of shape {tuple(value.shape)}"
    if value is None:
        return "None"
    name = type(value).__name__
    article = "an" if name[:1].lower() in "aeiou" else "a"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return f"{article} {name} of {len(value)} item(s)"
    return f"{article} {name}"


def _source_file(factory: Callable[..., Any]) -> str | None:
    try:
        return inspect.getsourcefile(inspect.unwrap(factory))
    except TypeError:  # a builtin or a callable instance
        module = sys.modules.get(getattr(factory, "__module__", None) or "")
        return getattr(module, "__file__", None)


def _candidates(module: ModuleType) -> str:
    names = [
        name
        for name, value in vars(module).items()
        if inspect.isfunction(value)
        and value.__module__ == module.__name__
        and not name.startswith("_")
    ]
    return f"; functions defined there: {', '.join(names)}" if names else ""


def _trim(report: traceback.TracebackException, seen: set[int]) -> None:
    if id(report) in seen:
        return
    seen.add(id(report))
    frames = [f for f in report.stack if _is_user_frame(f.filename)]
    report.stack = traceback.StackSummary.from_list(frames)
    for chained in (report.__cause__, report.__context__):
        if chained is not None:
            _trim(chained, seen)


def _is_user_frame(filename: str) -> bool:
    if filename.startswith("<frozen "):
        return False
    return not str(Path(filename).resolve()).startswith(_HIDDEN_DIRS)


__all__ = [
    "EXPECTED_SHAPES",
    "FactoryFailed",
    "Problem",
    "call_factory",
    "load",
    "load_factory",
    "parse_spec",
    "user_traceback",
    "validate",
]
