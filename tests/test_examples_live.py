"""The epoch/validation example runs to completion without babysit, for every ``--bug``.

All variants run in one subprocess (one ``import torch``), each for two epochs, so the whole
file takes a few seconds. What babysit reports on them is tested in tests/test_examples.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import EXAMPLES

SCRIPT = EXAMPLES / "train_val_classifier.py"
BUGS = [
    "none",
    "overfit",
    "no-eval-mode",
    "no-zero-grad",
    "lr-too-high",
    "lr-too-low",
    "shuffled-val-labels",
    "no-validation",
    "underfit",
]
EPOCHS = 2

# Runs the script's __main__ once per bug in the same interpreter and prints a marker line
# before each run, so the output can be split per variant.
RUNNER = """
import runpy, sys
script, epochs, bugs = sys.argv[1], sys.argv[2], sys.argv[3:]
for bug in bugs:
    print(f"=== {bug}", flush=True)
    # A quarter of the default training set keeps this a smoke test (--bug overfit sets its own).
    sys.argv = [script, "--bug", bug, "--epochs", epochs, "--n-train", "4096", "--device", "cpu"]
    runpy.run_path(script, run_name="__main__")
"""


def _run_all() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(SCRIPT), str(EPOCHS), *BUGS],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    parts = re.split(r"^=== (\S+)\n", proc.stdout, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_variant_runs_its_epochs_and_reports_like_a_real_script():
    outputs = _run_all()
    assert list(outputs) == BUGS
    for bug, out in outputs.items():
        epoch_lines = re.findall(r"^epoch +\d+ \| train loss \S+ acc \S+(.*)$", out, re.MULTILINE)
        assert len(epoch_lines) == EPOCHS, (bug, out)
        validated = [" | val loss " in rest for rest in epoch_lines]
        # Only the no-validation bug skips the validation pass.
        assert validated == [bug != "no-validation"] * EPOCHS, (bug, out)
        assert out.rstrip().splitlines()[-1].startswith("done in "), (bug, out)


def test_bug_list_matches_the_script():
    text = SCRIPT.read_text()
    listed = re.search(r"^BUGS = \[(.*?)\]", text, re.MULTILINE | re.DOTALL)
    assert listed is not None
    assert re.findall(r'"([^"]+)"', listed.group(1)) == BUGS
