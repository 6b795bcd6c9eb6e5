"""Babysitting the processes a script launches: the ``BABYSIT_AUTOSTART`` protocol.

Lightning's ``strategy="ddp"`` starts ranks 1..N-1 as new ``python train.py`` processes; the
hooks ``babysit audit`` installed in its own process are not there. ``babysit audit`` therefore
puts ``BABYSIT_AUTOSTART`` in the environment the script (and every process it starts) sees:
JSON with the sampling options and a folder. In a child process, Lightning calls babysit's
``callbacks_factory`` entry point at ``Trainer(...)``; the callback it returns runs its own
session and saves that process's trace in the folder. After the script, the audit reads the
folder and notes the other ranks in its report (the findings are rank 0's).

``BABYSIT_AUTOSTART=1`` (no folder) starts a callback that prints its report at the end of
``fit``: zero-code babysitting of a Lightning script without ``babysit audit``.

Processes started by other launchers (torchrun, ``mp.spawn``, accelerate) are not covered:
use ``babysit.watch`` in the script, or the trainer callbacks, there.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV = "BABYSIT_AUTOSTART"
#: The environment variables launchers use to tell a process its rank, most global first.
RANK_VARIABLES = ("RANK", "GLOBAL_RANK", "LOCAL_RANK", "NODE_RANK")


@dataclass(frozen=True)
class Autostart:
    """The options a child process runs with, read from ``BABYSIT_AUTOSTART``."""

    directory: Path | None = None
    sample_every: int = 10
    overhead_budget: float | None = 0.03
    #: also judge and report in this process (True when a person set the variable by hand)
    report: bool = False

    @classmethod
    def from_env(cls, environ: Any = None) -> Autostart | None:
        """The options in the environment, or None when the variable is unset, empty or "0"."""
        raw = (os.environ if environ is None else environ).get(ENV, "").strip()
        if raw in ("", "0", "false", "no"):
            return None
        if not raw.startswith("{"):
            return cls(report=True)  # BABYSIT_AUTOSTART=1
        try:
            data = json.loads(raw)
            directory = data.get("dir")
            return cls(
                directory=Path(directory) if directory else None,
                sample_every=max(1, int(data.get("sample_every", 10))),
                overhead_budget=_budget(data.get("overhead_budget", 0.03)),
                report=bool(data.get("report", not directory)),
            )
        except (ValueError, TypeError, AttributeError):
            return cls(report=True)  # malformed: behave as "1" rather than break training

    def to_env(self) -> str:
        return json.dumps(
            {
                "dir": str(self.directory) if self.directory else None,
                "sample_every": self.sample_every,
                "overhead_budget": self.overhead_budget,
                "report": self.report,
            }
        )

    def _path(self, rank: int, suffix: str) -> Path:
        assert self.directory is not None
        return self.directory / f"rank{rank}-pid{os.getpid()}.{suffix}"

    def mark_running(self, rank: int) -> None:
        """Tell the parent a trace is on its way: launchers do not always wait for their
        children (Lightning's rank 0 returns from ``fit`` while the other ranks tear down)."""
        if self.directory is not None:
            with contextlib.suppress(OSError):
                self._path(rank, "running").touch()

    def save_trace(self, trace: Any, rank: int) -> Path | None:
        """Write this process's trace where the parent looks for it; never raises."""
        if self.directory is None:
            return None
        path = self._path(rank, "trace.json")
        trace.run["rank"] = rank
        trace.run["pid"] = os.getpid()
        try:
            partial = path.with_suffix(".partial")
            trace.save(partial)
            partial.replace(path)  # the parent never reads half a file
        except OSError:
            return None
        finally:
            with contextlib.suppress(OSError):
                self._path(rank, "running").unlink()
        return path


def process_rank(default: int = 0) -> int:
    """This process's rank as its launcher set it in the environment."""
    for name in RANK_VARIABLES:
        value = os.environ.get(name)
        if value is not None and value.strip().isdigit():
            return int(value)
    return default


@contextlib.contextmanager
def for_children(sample_every: int, overhead_budget: float | None) -> Iterator[Path]:
    """Set ``BABYSIT_AUTOSTART`` for the processes started inside the block; yields the folder
    their traces land in. The variable and the folder are gone afterwards."""
    saved = os.environ.get(ENV)
    with tempfile.TemporaryDirectory(prefix="babysit-ranks-") as folder:
        options = Autostart(Path(folder), sample_every, overhead_budget, report=False)
        os.environ[ENV] = options.to_env()
        try:
            yield Path(folder)
        finally:
            if saved is None:
                os.environ.pop(ENV, None)
            else:
                os.environ[ENV] = saved


def wait_for_children(folder: Path, timeout: float = 15.0) -> None:
    """Wait until every child that announced a trace has written it or is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = [m for m in folder.glob("*.running") if _alive(m)]
        if not pending:
            return
        time.sleep(0.05)


def _alive(marker: Path) -> bool:
    try:
        pid = int(marker.name.split("-pid", 1)[1].split(".", 1)[0])
        os.kill(pid, 0)
    except (IndexError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def child_summaries(folder: Path) -> list[dict[str, Any]]:
    """One line of facts per child trace in ``folder``, ordered by rank."""
    from babysit.trace import Trace

    wait_for_children(folder)
    summaries = []
    for path in sorted(folder.glob("rank*.trace.json")):
        try:
            trace = Trace.load(path)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        run = trace.run
        summaries.append(
            {
                "rank": run.get("rank"),
                "pid": run.get("pid"),
                "steps": run.get("steps"),
                "epochs": run.get("epochs"),
                "evals": len(trace.evals),
                "models": [m.get("label") for m in trace.facts.get("models", [])],
                "error": run.get("error"),
            }
        )
    summaries.sort(key=lambda s: (s["rank"] is None, s["rank"] or 0, s["pid"] or 0))
    return summaries


def record_children(trace: Any, folder: Path) -> None:
    """Note in the parent's trace the child processes that saved a trace in ``folder``."""
    children = child_summaries(folder)
    if not children:
        return
    trace.run["other_ranks"] = children
    ranks = ", ".join(str(c["rank"]) for c in children)
    steps = ", ".join(str(c["steps"]) for c in children)
    trace.notes.append(
        f"{len(children)} more training process(es) ran (rank {ranks}; {steps} steps): "
        "the findings are this process's (rank 0); the other ranks' summaries are in "
        "run.other_ranks"
    )


def _budget(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if number > 0 else None
