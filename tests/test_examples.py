"""`babysit audit` on every bundled example: silent on the clean ones, the right finding on each
buggy one (and nothing else at warning or above)."""

from __future__ import annotations

import json

import pytest
from conftest import EXAMPLES
from typer.testing import CliRunner

from babysit.cli import app

runner = CliRunner()

CASES = [
    ("mlp_classifier.py", [], None),
    ("mlp_classifier.py", ["--batchnorm"], None),
    ("cnn_classifier.py", [], None),
    ("mlp_classifier.py", ["--bug", "overconfident-init"], "loss-at-init-not-chance"),
    ("mlp_classifier.py", ["--bug", "deep-tiny-init"], "activation-variance-unstable"),
    ("mlp_classifier.py", ["--bug", "raw-features"], "unnormalized-inputs"),
    ("cnn_classifier.py", ["--bug", "raw-pixels"], "unnormalized-inputs"),
    ("cnn_classifier.py", ["--bug", "batch-size-one"], "batchnorm-batch-size-one"),
    ("mlp_classifier.py", ["--bug", "softmax-before-loss"], "cannot-overfit-tiny-batch"),
    ("mlp_classifier.py", ["--bug", "zero-init"], "symmetric-init"),
    ("mlp_classifier.py", ["--bug", "tanh-huge-init"], "saturated-activation"),
    ("cnn_classifier.py", ["--bug", "detached-layer"], "parameters-without-gradient"),
    ("cnn_classifier.py", ["--bug", "batch-mixing"], "batch-mixing"),
    ("cnn_classifier.py", ["--bug", "ignores-input"], "input-independent-output"),
]


# Consequences are folded into their root finding (`also_explains`), so each buggy example
# should get exactly its own finding at warning level or above.
ALSO_TRUE: dict[str, set[str]] = {}


def _audit(script, args, max_steps="60"):
    result = runner.invoke(
        app,
        [
            "audit",
            str(EXAMPLES / script),
            "--max-steps",
            max_steps,
            "--format",
            "json",
            "--",
            *args,
        ],
    )
    return result, json.loads(result.stdout)


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    CASES,
    ids=[f"{s}:{' '.join(a) or 'clean'}" for s, a, _ in CASES],
)
def test_example(script, args, expected):
    result, data = _audit(script, args)
    loud = {f["name"] for f in data["findings"] if f["severity"] in ("error", "warning")}
    if expected is None:
        assert loud == set(), data["findings"]
        assert result.exit_code == 0
    else:
        assert expected in loud, data["findings"]
        extra = loud - {expected}
        assert extra <= ALSO_TRUE.get(expected, set()), data["findings"]


# Real runs with epochs and validation (the live checks): each script runs to its end.
LIVE_CASES = [
    ([], None),
    (["--bug", "overfit"], "train-val-gap"),
    (["--bug", "no-eval-mode"], "train-mode-during-eval"),
    (["--bug", "no-zero-grad"], "gradients-not-reset"),
    (["--bug", "lr-too-high"], "loss-diverging"),
    (["--bug", "lr-too-low"], "update-ratio-off"),
    (["--bug", "shuffled-val-labels"], "validation-at-chance"),
    (["--bug", "no-validation"], "no-validation"),
    (["--bug", "underfit"], "train-val-gap"),
]
#: other findings that are true of a live bug (each with its own evidence)
LIVE_ALSO_TRUE = {
    # lr 1e-7: some tensors do not change at all in float32, and the model underfits
    "update-ratio-off": {"parameters-without-gradient", "train-val-gap"},
    # weight decay 1.0: update-ratio-off names the decay; the gradients vanish with the weights
    "train-val-gap": {"update-ratio-off", "unstable-gradients"},
}


@pytest.mark.parametrize(
    ("args", "expected"), LIVE_CASES, ids=[" ".join(a) or "clean" for a, _ in LIVE_CASES]
)
def test_live_example(args, expected):
    result, data = _audit("train_val_classifier.py", args, max_steps="0")
    loud = {f["name"] for f in data["findings"] if f["severity"] in ("error", "warning")}
    if expected is None:
        assert loud == set(), data["findings"]
        assert result.exit_code == 0
        return
    assert expected in loud, data["findings"]
    assert loud - {expected} <= LIVE_ALSO_TRUE.get(expected, set()), data["findings"]
    if args[-1] == "underfit":
        [finding] = [f for f in data["findings"] if f["name"] == "train-val-gap"]
        assert finding["evidence"]["kind"] == "underfitting"


def test_batchnorm_trailing_one_crash_is_explained_with_exit_4():
    result, data = _audit("mlp_classifier.py", ["--bug", "batchnorm-trailing-one"], "0")
    assert result.exit_code == 4
    assert data["run"]["status"] == "crashed"
    [finding] = [f for f in data["findings"] if f["name"] == "batchnorm-batch-size-one"]
    assert finding["severity"] == "error"
    assert finding["location"]["file"].endswith("mlp_classifier.py")


def test_underfitting_from_a_broken_init_is_folded_into_its_cause():
    # 200 steps are enough for three validation passes: the underfitting they show is a
    # consequence of the vanishing activations, not a second problem
    _, data = _audit("mlp_classifier.py", ["--bug", "deep-tiny-init"], "200")
    loud = {f["name"] for f in data["findings"] if f["severity"] in ("error", "warning")}
    assert loud == {"activation-variance-unstable"}, data["findings"]
    [root] = [f for f in data["findings"] if f["name"] == "activation-variance-unstable"]
    assert any(item.startswith("train-val-gap") for item in root["evidence"]["also_explains"])
