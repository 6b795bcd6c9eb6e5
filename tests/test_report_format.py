from __future__ import annotations

import json
import math

import jsonschema
import pytest
import torch
from conftest import ROOT, SmallCNN, blobs, init_all, mlp
from torch import nn

import babysit
from babysit import Severity, Trace

SCHEMA = json.loads((ROOT / "docs" / "report.schema.json").read_text())


def _reports():
    x, y = blobs()
    clean = babysit.check(mlp(), x, y, loss_fn=nn.CrossEntropyLoss())
    buggy_model = init_all(mlp(depth=8, width=128), std=0.01)
    buggy = babysit.check(buggy_model, x * 300 + 20, y, loss_fn=nn.CrossEntropyLoss())
    one = babysit.check(
        SmallCNN(), torch.randn(1, 3, 8, 8), torch.tensor([0]), loss_fn=nn.CrossEntropyLoss()
    )
    return [clean, buggy, one]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_json_report_matches_the_published_schema(index):
    report = _reports()[index]
    data = json.loads(report.to_json())
    jsonschema.validate(data, SCHEMA)
    assert data["summary"] == report.summary
    assert len(data["findings"]) == sum(data["summary"].values())


def test_findings_are_sorted_most_severe_first():
    report = _reports()[1]
    ranks = [f.severity.rank for f in report.findings]
    assert ranks == sorted(ranks, reverse=True)
    assert {f.name for f in report.findings} >= {
        "activation-variance-unstable",
        "unnormalized-inputs",
    }


def test_trace_round_trip_gives_the_same_findings(tmp_path):
    for report in _reports():
        path = tmp_path / "trace.json"
        report.trace.save(path)
        again = babysit.judge(Trace.load(path))
        assert [f.to_dict() for f in again.findings] == [f.to_dict() for f in report.findings]


def test_non_finite_values_survive_the_round_trip():
    trace = Trace(losses=[{"kind": "cross_entropy", "training": True, "value": math.nan}])
    restored = Trace.from_json(trace.to_json())
    assert math.isnan(restored.losses[0]["value"])
    report = babysit.judge(restored)
    [finding] = report.findings
    assert finding.severity is Severity.ERROR
    data = json.loads(report.to_json())  # strict JSON: no NaN literal
    jsonschema.validate(data, SCHEMA)
    assert data["findings"][0]["evidence"]["initial_loss"] == "nan"


def test_unsupported_trace_schema_is_a_clear_error():
    with pytest.raises(ValueError, match="trace schema"):
        Trace.from_dict({"trace_schema": 99})


def test_raise_for_findings_reads_like_the_report():
    report = _reports()[2]
    with pytest.raises(babysit.FindingsError) as info:
        report.raise_for_findings("error")
    text = str(info.value)
    assert "batchnorm-batch-size-one" in text
    assert "fix:" in text
    assert info.value.findings
    report.raise_for_findings("never")  # never raises


def test_text_report_has_summary_panels_and_chart():
    from babysit.reporters.text import render

    text = render(_reports()[1])
    assert "1 error, 1 warning" in text
    assert "BS102 activation-variance-unstable" in text
    # the tiny batch cannot be overfit *because* the activations vanish: one finding, not two
    assert "this also explains" in text and "cannot-overfit-tiny-batch" in text
    assert "pre-flight experiments" in text
    assert "evidence" in text and "fix" in text
    assert "activation std relative to the input" in text


def test_exit_codes_follow_fail_on():
    clean, buggy, one = _reports()
    assert clean.exit_code("error") == 0 and clean.ok
    assert buggy.exit_code("error") == 1  # a 9-layer net at std 0.01 cannot overfit
    assert buggy.exit_code("warning") == 1
    assert clean.exit_code("warning") == 0
    assert one.exit_code("error") == 1
    assert one.exit_code("never") == 0
    with pytest.raises(ValueError):
        one.exit_code("loud")
