"""babysit.testing: the assertions behind the pytest plugin, usable from any test runner."""

from __future__ import annotations

import pytest
import torch
from conftest import blobs, init_all, mlp
from torch import nn

from babysit import BabysitError, FindingsError, Report
from babysit.testing import (
    GRADIENTS_FLOW,
    assert_can_overfit,
    assert_gradients_flow,
    assert_loss_at_chance,
    assert_no_findings,
    assert_trainable,
    overfit_selection,
)

BUDGET = 10.0


@pytest.fixture
def batch():
    return blobs(64, 20, 4)


def clean():
    return mlp(2, 32, 20, 4)


def zero_init():
    return init_all(mlp(2, 32, 20, 4), 0.0)


def softmax_before_loss():
    return nn.Sequential(mlp(2, 32, 20, 4), nn.Softmax(dim=1))


def overconfident_head():
    model = mlp(2, 32, 20, 4)
    nn.init.normal_(model[-1].weight, std=8.0)  # a typo for 1/sqrt(fan_in)
    return model


class Detached(nn.Module):
    """The second layer's output is detached: the first layer never gets a gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(20, 32)
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.first(x)).detach())


def test_a_trainable_model_passes_and_returns_the_report(batch):
    x, y = batch
    report = assert_trainable(clean(), x, y, nn.CrossEntropyLoss(), budget=BUDGET)
    assert isinstance(report, Report)
    assert "cannot-overfit-tiny-batch" in report.checks_run


def test_the_failure_message_reads_like_the_report(batch):
    x, y = batch
    with pytest.raises(AssertionError) as info:
        assert_trainable(zero_init(), x, y, nn.CrossEntropyLoss(), budget=BUDGET)
    assert isinstance(info.value, FindingsError)
    assert [f.name for f in info.value.findings] == ["symmetric-init"]
    message = str(info.value)
    assert message.startswith("babysit found 1 problem(s) at or above fail_on='error'")
    assert "error BS104 symmetric-init: The 32 units of `0` start identical" in message
    assert "  weight_std: 0" in message  # evidence
    assert "  fix: Initialize the weights randomly" in message
    assert "\x1b[" not in message  # plain text: no ANSI colors
    # the info-level note does not reach fail_on="error", so it is not listed
    assert "regularization-without-effect" not in message


def test_fail_on_sets_the_level_that_fails(batch):
    x, y = batch
    with pytest.raises(FindingsError) as info:
        assert_trainable(clean(), x, y, nn.CrossEntropyLoss(), fail_on="info", budget=BUDGET)
    assert [f.name for f in info.value.findings] == ["regularization-without-effect"]
    report = assert_trainable(
        zero_init(), x, y, nn.CrossEntropyLoss(), fail_on="never", budget=BUDGET
    )
    assert not report.ok
    with pytest.raises(BabysitError, match="fail_on must be one of"):
        assert_no_findings(report, fail_on="sometimes")


def test_ignore_and_select_reach_the_checks(batch):
    x, y = batch
    report = assert_trainable(
        zero_init(), x, y, nn.CrossEntropyLoss(), ignore=["BS104", "BS1", "BS4"], budget=BUDGET
    )
    assert "symmetric-init" not in report.checks_run
    report = assert_trainable(clean(), x, y, nn.CrossEntropyLoss(), select="BS101")
    assert report.checks_run == ["loss-at-init-not-chance"]


def test_loss_at_chance_fires_on_an_overconfident_head_and_runs_one_forward_pass(batch):
    x, y = batch
    report = assert_loss_at_chance(clean(), x, y, nn.CrossEntropyLoss())
    assert report.checks_run == ["loss-at-init-not-chance"]
    assert not report.trace.experiments  # no experiments ran
    with pytest.raises(FindingsError) as info:
        assert_loss_at_chance(overconfident_head(), x, y, nn.CrossEntropyLoss())
    assert [f.name for f in info.value.findings] == ["loss-at-init-not-chance"]
    assert "fix:" in str(info.value)


def test_can_overfit_names_the_cause_when_one_is_known(batch):
    x, y = batch
    assert_can_overfit(clean(), x, y, nn.CrossEntropyLoss(), budget=BUDGET)
    with pytest.raises(FindingsError) as softmax:
        assert_can_overfit(softmax_before_loss(), x, y, nn.CrossEntropyLoss(), budget=BUDGET)
    assert [f.name for f in softmax.value.findings] == ["cannot-overfit-tiny-batch"]
    assert "Softmax" in str(softmax.value)
    with pytest.raises(FindingsError) as zero:
        assert_can_overfit(zero_init(), x, y, nn.CrossEntropyLoss(), budget=BUDGET)
    assert [f.name for f in zero.value.findings] == ["symmetric-init"]
    explained = zero.value.findings[0].evidence["also_explains"]
    assert any(line.startswith("cannot-overfit-tiny-batch:") for line in explained)


def test_overfit_selection_follows_implied_by_transitively():
    selection = overfit_selection()
    assert selection[0] == "cannot-overfit-tiny-batch"
    assert {"symmetric-init", "parameters-without-gradient", "input-independent-output"} <= set(
        selection
    )
    assert len(selection) == len(set(selection))


def test_gradients_flow_fires_on_a_detached_layer_and_zero_init(batch):
    x, y = batch
    report = assert_gradients_flow(clean(), x, y, nn.CrossEntropyLoss(), budget=BUDGET)
    assert set(report.checks_run) == set(GRADIENTS_FLOW)
    with pytest.raises(FindingsError) as detached:
        assert_gradients_flow(Detached(), x, y, nn.CrossEntropyLoss(), budget=BUDGET)
    assert [f.name for f in detached.value.findings] == ["parameters-without-gradient"]
    assert "first.weight" in str(detached.value)
    with pytest.raises(FindingsError) as zero:
        assert_gradients_flow(zero_init(), x, y, nn.CrossEntropyLoss(), budget=BUDGET)
    assert [f.name for f in zero.value.findings] == ["symmetric-init"]


def test_bad_arguments_are_babysit_errors_not_assertion_failures(batch):
    x, y = batch
    with pytest.raises(BabysitError):
        assert_trainable(clean(), x, y, "cross-entropy")
    with pytest.raises(BabysitError, match="expected a babysit Report"):
        assert_no_findings("report")
