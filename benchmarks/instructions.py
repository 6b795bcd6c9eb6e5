"""Per-step cost of ``babysit.watch()`` in CPU instructions, counted by valgrind's callgrind.

Wall-clock ratios on a shared, virtualized machine move by ±15 % from run to run (see
overhead.py); instruction counts move by ~1–2 % (allocator and address-space layout), whatever
else the machine is doing. This script runs the benchmark MLP of overhead.py
(20-128-128-128-10, batch 64, SGD with momentum) under callgrind for N and N + 100 training
steps in each variant and reports the instructions per step, (count(N + 100) - count(N)) / 100,
so that start-up (imports, model construction, entering ``watch``) cancels out. Garbage is
collected and frozen (``gc.freeze()``) before the timed steps, as in overhead.py: a full
collection falling in one window and not the other would otherwise swing a variant by ~10 M
instructions.

    python benchmarks/instructions.py            # about 10 minutes on 2 cores
    python benchmarks/instructions.py --steps 50 # a longer window

Needs ``valgrind`` (Debian: ``apt-get install valgrind``). Instructions are not seconds: Python
code runs at a lower IPC than torch's kernels, so the wall-time share of babysit is somewhat
larger than its instruction share. Use both numbers.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {
    "bare": None,
    "hooks-only": {"sample_every": 10**9, "overhead_budget": None},
    "watch/10": {},  # the defaults: sample_every=10 with the 3 % overhead budget
    "watch/1": {"sample_every": 1, "overhead_budget": None},
}

LOOP = """
import gc
import sys
import torch
import torch.nn.functional as F
from torch import nn

import babysit

torch.set_num_threads(1)
torch.manual_seed(0)
steps, options = int(sys.argv[1]), eval(sys.argv[2])
model = nn.Sequential(
    nn.Linear(20, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
    nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10),
)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x, y = torch.randn(64, 20), torch.randint(0, 10, (64,))
sitter = babysit.watch(model, opt, **options) if options is not None else None
if sitter is not None:
    sitter.__enter__()
# one full collection landing in one window but not the other would add ~10 M instructions:
# move everything built so far out of the collector's reach, as overhead.py does
gc.collect()
gc.freeze()
for _ in range(10 + steps):
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()
if sitter is not None:
    sitter.__exit__(None, None, None)
"""


def count(script: Path, steps: int, options: dict | None) -> int:
    # a fixed hash seed: dict and set layouts, and so the instruction counts, repeat
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            str(script),
            str(steps),
            repr(options),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    match = re.search(r"refs:\s+([\d,]+)", result.stderr)
    if not match:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{result.stderr[-2000:]}")
    return int(match.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="the shorter run's steps")
    parser.add_argument("--jobs", type=int, default=2, help="valgrind processes at once")
    parser.add_argument(
        "--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS), metavar="NAME"
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "loop.py"
        script.write_text(LOOP)
        names = ["bare", *(v for v in args.variants if v != "bare")]
        jobs = [(name, n) for name in names for n in (args.steps, args.steps + 100)]
        with ThreadPoolExecutor(args.jobs) as pool:
            results = pool.map(lambda job: count(script, job[1], VARIANTS[job[0]]), jobs)
            counts = dict(zip(jobs, results, strict=True))
    per_step = {
        name: (counts[(name, args.steps + 100)] - counts[(name, args.steps)]) / 100
        for name in names
    }
    bare = per_step["bare"]
    print("babysit.watch() per-step cost in instructions (callgrind), benchmark MLP, batch 64")
    for name, value in per_step.items():
        extra = value - bare
        ratio = value / bare
        print(f"  {name:<11} {value / 1e6:7.3f} M/step   {extra / 1e3:+9.1f} k   {ratio:.3f}x")


if __name__ == "__main__":
    main()
