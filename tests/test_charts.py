"""Chart models (babysit.charts) and their terminal drawing (babysit.reporters.text_charts)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import blobs, init_all, mlp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import babysit
from babysit import Trace
from babysit.chance import chance_level
from babysit.charts import (
    MAX_POINTS,
    SMOOTH_ABOVE,
    UPDATE_RATIO_REFERENCE,
    Scale,
    activation_chart,
    ema,
    gradient_norm_chart,
    loss_chart,
    pictures,
    thin,
    update_ratio_chart,
)
from babysit.report import judge
from babysit.reporters.text import render, renderables


def curve(n: int, *, start: float = 2.3, end: float = 0.3) -> list[float]:
    return [end + (start - end) * math.exp(-4 * i / max(n, 1)) for i in range(n)]


def make_trace(
    losses: list[float],
    val: list[tuple[int, float, int | None]] = (),
    *,
    mode: str = "watch",
) -> Trace:
    trace = Trace(mode=mode, target="Net")
    trace.steps = [{"step": i, "loss": v} for i, v in enumerate(losses)]
    trace.evals = [
        {"step": s, "epoch": e, "val_loss": v, "batches": 4, "source": "loss"} for s, v, e in val
    ]
    return trace


def ce_loss_event(classes: int = 10, reduction: str = "mean") -> dict:
    return {
        "step": 0,
        "kind": "cross_entropy",
        "training": True,
        "num_classes": classes,
        "class_counts": [7.0] * classes,
        "value": math.log(classes),
        "reduction": reduction,
    }


# -- loss curves -------------------------------------------------------------------------------
def test_short_run_keeps_every_point_and_no_smoothing():
    losses = curve(30)
    chart = loss_chart(make_trace(losses))
    assert chart is not None and chart.smooth is None
    assert chart.train.points == [(float(i), v) for i, v in enumerate(losses)]
    assert chart.main is chart.train
    assert chart.steps == 30
    assert (chart.x.lo, chart.x.hi) == (0, 29)


def test_long_run_gets_a_smoothed_curve_that_follows_the_loss():
    losses = [1.0] * 100 + [0.5] * 100
    chart = loss_chart(make_trace(losses))
    assert len(losses) > SMOOTH_ABOVE
    assert chart.smooth is not None and chart.main is chart.smooth
    smooth = dict(chart.smooth.points)
    assert smooth[0.0] == pytest.approx(1.0)  # bias-corrected: no ramp up from zero
    assert smooth[99.0] == pytest.approx(1.0)
    assert 0.5 < smooth[110.0] < 1.0  # lags behind the drop ...
    assert smooth[199.0] == pytest.approx(0.5, abs=1e-3)  # ... and catches up


def test_ema_skips_non_finite_values():
    points = [(0.0, 1.0), (1.0, math.nan), (2.0, 1.0)]
    assert ema(points, span=3) == [(0.0, pytest.approx(1.0)), (2.0, pytest.approx(1.0))]


def test_thinning_bounds_the_points_and_keeps_spikes():
    values = [1.0] * 5000
    values[1234] = 50.0
    values[4321] = 0.01
    points = [(float(i), v) for i, v in enumerate(values)]
    kept = thin(points)
    assert len(kept) <= MAX_POINTS
    assert (1234.0, 50.0) in kept and (4321.0, 0.01) in kept
    assert [x for x, _ in kept] == sorted(x for x, _ in kept)
    assert thin(points[:10]) == points[:10]


def test_validation_curve_and_best_epoch():
    val = [(10, 1.5, 1), (20, 1.1, 2), (30, 0.9, 3), (40, 1.0, 4), (50, 1.3, 5)]
    chart = loss_chart(make_trace(curve(51), val))
    assert chart.val.points == [(float(s), v) for s, v, _ in val]
    assert (chart.best.step, chart.best.value, chart.best.epoch) == (30, 0.9, 3)
    assert "step 30, epoch 3" in chart.best.label


def test_best_epoch_comes_from_the_epochs_when_the_eval_has_none():
    trace = make_trace(curve(40), [(10, 1.2, None), (20, 0.8, None), (30, 0.95, None)])
    trace.epochs = [
        {"epoch": k + 1, "start_step": 10 * k, "end_step": 10 * (k + 1), "train_loss": None}
        for k in range(4)
    ]
    chart = loss_chart(trace)
    assert (chart.best.step, chart.best.epoch) == (20, 3)
    assert chart.epoch_starts == (0, 10, 20, 30)


def test_the_earliest_of_equal_validation_losses_is_the_best():
    chart = loss_chart(make_trace(curve(20), [(5, 0.7, 1), (10, 0.7, 2)]))
    assert chart.best.step == 5


def test_diverged_run_marks_where_the_loss_became_non_finite():
    losses = curve(40)
    losses[25:] = [math.nan] * 15
    losses[24] = math.inf
    chart = loss_chart(make_trace(losses, [(10, 2.0, 1), (30, math.nan, 2)]))
    assert chart.nonfinite_step == 24
    assert chart.train.points == [(float(i), v) for i, v in enumerate(losses[:24])]
    assert chart.val.points == [(10.0, 2.0)]
    assert chart.best.step == 10
    assert math.isfinite(chart.y.lo) and math.isfinite(chart.y.hi)
    assert chart.x.hi == 39  # the axis still covers the whole run


def test_a_finite_loss_after_a_nan_starts_a_new_segment():
    losses = [1.0, 0.9, math.nan, 0.8, 0.7]
    chart = loss_chart(make_trace(losses))
    assert [len(s) for s in chart.train.segments] == [2, 2]
    assert chart.nonfinite_step == 2


def test_a_nonfinite_event_marks_the_chart_too():
    trace = make_trace(curve(10))
    trace.events = [{"kind": "nonfinite", "step": 7, "what": "loss", "layer": None}]
    assert loss_chart(trace).nonfinite_step == 7
    trace.events = [{"kind": "nonfinite", "step": 3, "what": "gradient", "layer": "fc1"}]
    assert loss_chart(trace).nonfinite_step is None


def test_all_nan_loss_has_no_line_but_a_marker():
    chart = loss_chart(make_trace([math.nan] * 5))
    assert chart.train is None and chart.nonfinite_step == 0


def test_single_point():
    chart = loss_chart(make_trace([2.3]))
    assert chart.train.points == [(0.0, 2.3)]
    assert chart.x.lo < 0 < chart.x.hi
    assert chart.x.fraction(0) == pytest.approx(0.5)
    assert chart.y.lo < 2.3 < chart.y.hi


def test_no_curves_without_data_or_for_check_reports():
    assert loss_chart(Trace(mode="watch")) is None
    assert loss_chart(make_trace(curve(10), mode="check")) is None
    assert not pictures(judge(Trace(mode="watch")))


def test_chance_line_for_cross_entropy_and_not_for_summed_losses():
    trace = make_trace(curve(20))
    trace.losses = [ce_loss_event(10)]
    chart = loss_chart(trace)
    assert chart.chance == pytest.approx(math.log(10))
    assert "ln(10)" in chart.chance_label
    trace.losses = [ce_loss_event(10, reduction="sum")]
    assert loss_chart(trace).chance is None


def test_log_scale_only_for_losses_spanning_decades():
    assert loss_chart(make_trace([2.3 * 0.6**i for i in range(20)])).y.log  # 2.3 → 1e-4
    assert not loss_chart(make_trace(curve(20, start=2.3, end=0.5))).y.log
    assert not loss_chart(make_trace([1.0, -3.0, 0.5])).y.log  # negative losses exist


def test_scale_fractions_and_ticks():
    linear = Scale(0.0, 10.0)
    assert linear.fraction(2.5) == 0.25 and linear.fraction(-1) == 0.0
    assert linear.ticks() == [0, 2.5, 5, 7.5, 10]
    log = Scale(1e-4, 1e-1, log=True)
    assert log.fraction(1e-3) == pytest.approx(1 / 3)
    assert log.ticks() == [1e-4, 1e-3, 1e-2, 1e-1]
    assert log.fraction(0.0) == 0.0


# -- per-layer bars ----------------------------------------------------------------------------
def grad_entry(step: int, **layers: tuple[float, float, float | None]) -> dict:
    out = {}
    for name, (grad, param, update) in layers.items():
        stats = {"grad_norm": grad, "grad_abs_mean": grad / 10, "param_norm": param, "numel": 10}
        if update is not None:
            stats["update_norm"] = update
        out[name] = stats
    return {"step": step, "layers": out}


def test_gradient_and_update_bars_are_medians_in_forward_order():
    trace = Trace(mode="watch")
    trace.layers = {"fc1": {"order": 0}, "fc2": {"order": 1}, "head": {"order": 2}}
    trace.gradients = [
        grad_entry(0, head=(1.0, 1.0, 1e-3), fc2=(0.1, 2.0, 2e-2), fc1=(0.5, 10.0, 1e-2)),
        grad_entry(10, head=(3.0, 1.0, 3e-3), fc2=(0.2, 2.0, 4e-2), fc1=(math.nan, 10.0, 1e-2)),
        grad_entry(20, head=(2.0, 1.0, 2e-3), fc2=(0.3, 2.0, 6e-2), fc1=(0.7, 10.0, 1e-2)),
    ]
    norms = gradient_norm_chart(trace, flagged={"fc2"})
    assert [b.name for b in norms.bars] == ["fc1", "fc2", "head"]
    assert [b.value for b in norms.bars] == [pytest.approx(0.6), 0.2, 2.0]
    assert [b.nonfinite for b in norms.bars] == [1, 0, 0]
    assert [b.flagged for b in norms.bars] == [False, True, False]

    ratios = update_ratio_chart(trace)
    assert ratios.reference == UPDATE_RATIO_REFERENCE
    assert [b.value for b in ratios.bars] == [
        pytest.approx(1e-3),
        pytest.approx(2e-2),
        pytest.approx(2e-3),
    ]
    assert [b.status(ratios) for b in ratios.bars] == ["good", "warn", "good"]


def test_no_update_chart_without_update_norms_and_layers_outside_the_order_go_last():
    trace = Trace(mode="watch")
    trace.layers = {"b": {"order": 0}}
    trace.gradients = [grad_entry(0, a=(1.0, 1.0, None), b=(2.0, 1.0, None))]
    assert update_ratio_chart(trace) is None
    assert [b.name for b in gradient_norm_chart(trace).bars] == ["b", "a"]
    assert gradient_norm_chart(Trace(mode="watch")) is None
    trace.mode = "check"
    assert gradient_norm_chart(trace) is None


def test_activation_bars_flag_the_layers_the_check_names():
    x, y = blobs()
    report = babysit.check(
        init_all(mlp(depth=8, width=128), 0.01), x, y, loss_fn=nn.CrossEntropyLoss()
    )
    flagged = {
        f.location.layer
        for f in report.findings
        if f.name == "activation-variance-unstable" and f.location
    }
    assert flagged
    [chart] = pictures(report).bars
    assert chart.name == "activation_std"
    assert {b.name for b in chart.bars if b.flagged} == flagged
    assert chart.bars[-1].value < 1e-3  # std 0.01 shrinks the signal by decades
    assert chart.bars[-1].status(chart) == "bad"
    assert activation_chart(Trace()) is None


# -- terminal drawing --------------------------------------------------------------------------
def watch_report(n: int = 60) -> babysit.Report:
    trace = make_trace(curve(n), [(20, 1.4, 1), (40, 1.0, 2), (59, 1.2, 3)])
    trace.losses = [ce_loss_event(10)]
    trace.gradients = [grad_entry(0, fc1=(0.5, 10.0, 1e-2), head=(2.0, 1.0, 1e-6))]
    return judge(trace)


def test_text_report_draws_the_loss_panel_and_bars_after_the_findings():
    report = watch_report()
    text = render(report)
    assert "\x1b[" not in text  # plain by default
    plot = text.split("╭─ loss")[1].split("└")[0]
    assert sum("\u2800" < ch <= "\u28ff" for ch in plot) >= 30  # the braille curve
    assert plot.count("●") == 3 - ("★" in plot) and plot.count("★") == 1
    assert "★ best validation loss 1 (step 40, epoch 2)" in text
    assert "● validation loss, 3 passes" in text
    assert "┄ chance 2.3" in text
    assert "gradient norm by layer" in text and "update / weight ratio by layer" in text
    assert "1e-6" in text
    items = renderables(report)
    assert items[0].plain.startswith("babysit Net")
    first_picture = next(i for i, item in enumerate(items) if getattr(item, "title", None))
    assert all(getattr(item, "title", None) for item in items[first_picture : first_picture + 3])


def test_text_loss_panel_marks_the_divergence():
    losses = curve(30)
    losses[20:] = [math.nan] * 10
    text = render(judge(make_trace(losses)))
    assert "✗ loss not finite from step 20" in text
    assert "✗" in text.split("└")[0]  # on the plot itself, not only in the legend


def test_check_reports_show_no_loss_panel():
    x, y = blobs()
    report = babysit.check(mlp(), x, y, loss_fn=nn.CrossEntropyLoss())
    assert pictures(report).loss is None
    text = render(report)
    assert "╭─ loss" not in text and "⣿ training loss" not in text


# -- a real run --------------------------------------------------------------------------------
def test_real_watch_run_with_validation():
    torch.manual_seed(0)
    x, y = blobs(256)
    train = DataLoader(TensorDataset(x[:192], y[:192]), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset(x[192:], y[192:]), batch_size=32)
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with babysit.watch(model, opt, sample_every=3, overhead_budget=None) as sitter:
        for _ in range(4):
            model.train()
            for xb, yb in train:
                opt.zero_grad()
                nn.functional.cross_entropy(model(xb), yb).backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                for xb, yb in val:
                    nn.functional.cross_entropy(model(xb), yb)
    report = sitter.report
    trace = report.trace
    chart = loss_chart(trace)
    assert chart is not None
    train_losses = [s["loss"] for s in trace.steps if s.get("loss") is not None]
    assert chart.steps == len(train_losses) == 24
    assert chart.nonfinite_step is None
    # the first batches' labels are not perfectly balanced: the line is at the prior's entropy
    chance = chance_level(trace.training_losses())
    assert chance.prior < chance.uniform == pytest.approx(math.log(10))
    assert chart.chance == chance.prior
    assert "best constant prediction" in chart.chance_label
    assert chart.main.points[-1][1] < chart.main.points[0][1]  # it learns
    if trace.evals:  # the section may still be empty while its probe is being written
        assert len(chart.val.points) == len(trace.evals)
        best = min(trace.evals, key=lambda e: e["val_loss"])
        assert (chart.best.step, chart.best.value) == (best["step"], best["val_loss"])
    if trace.gradients:
        norms = gradient_norm_chart(trace)
        assert [b.name for b in norms.bars] == [
            n for n in trace.layer_order() if n in {b.name for b in norms.bars}
        ]
        assert all(b.value is not None and b.value > 0 for b in norms.bars)
    text = render(report)
    assert "╭─ loss" in text and "⣿ training loss" in text
