"""Chart models: what the pictures of a run show, as plain data, for every reporter.

The terminal and HTML reporters draw the same charts from these models, so the numbers (which
points, which smoothing, where the best epoch is, which scale) are decided once, here, and
tested without drawing anything.

* :func:`loss_chart`: training loss per step (raw and, for long runs, an exponential moving
  average), validation loss at the steps its passes ran, the best validation point, the
  chance level, and the first step where the loss stopped being finite.
* :func:`gradient_norm_chart`, :func:`update_ratio_chart`: per-layer medians over the sampled
  steps of ``trace.gradients``, on a log scale.
* :func:`activation_chart`: per-layer activation std relative to the network input, at init.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from babysit.chance import chance_level
from babysit.curves import evaluation_source
from babysit.layerstats import signal_chain
from babysit.trace import Trace

if TYPE_CHECKING:
    from babysit.report import Report

#: Runs longer than this get a smoothed training curve next to the raw one.
SMOOTH_ABOVE = 50
#: A raw series longer than this is thinned to the min and max of each bucket, which keeps
#: spikes visible (a plain stride would drop them) while bounding the size of an HTML report.
MAX_POINTS = 600
#: A loss that spans at least this ratio (and stays positive) is drawn on a log scale.
LOG_SCALE_RATIO = 50.0

#: CS231n ("Neural Networks Part 3", babysitting the learning process): the ratio of the
#: update magnitude to the weight magnitude "should be somewhere around 1e-3"; lower suggests
#: a learning rate too low, higher one too high. A decade either side counts as in range.
UPDATE_RATIO_REFERENCE = 1e-3
UPDATE_RATIO_BAND = (1e-4, 1e-2)
UPDATE_RATIO_OUTER = (1e-5, 1e-1)
#: Variance-preserving init keeps activations within a decade of the input's scale; the same
#: bands colour the activation chart of the text report since it was first written.
ACTIVATION_BAND = (0.1, 10.0)
ACTIVATION_OUTER = (1e-3, 1e3)

#: Pre-flight reports: a single forward/backward pass, so no curves and no gradient history.
MODES_WITHOUT_CURVES = ("check", "experiment")

Point = tuple[float, float]


@dataclass(frozen=True)
class Scale:
    """Maps values in [lo, hi] to [0, 1], linearly or by decades."""

    lo: float
    hi: float
    log: bool = False

    @classmethod
    def fit(cls, values: Iterable[float], *, log: bool | None = None, pad: float = 0.0) -> Scale:
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            return cls(0.0, 1.0)
        lo, hi = min(finite), max(finite)
        if log is None:
            log = lo > 0 and hi / lo >= LOG_SCALE_RATIO
        if log:
            lo_e, hi_e = math.log10(lo), math.log10(hi)
            if hi_e - lo_e < 1e-9:
                lo_e, hi_e = lo_e - 0.5, hi_e + 0.5
            span = (hi_e - lo_e) * pad
            return cls(10 ** (lo_e - span), 10 ** (hi_e + span), log=True)
        if hi - lo < 1e-12 * max(abs(hi), 1.0):
            delta = abs(hi) * 0.1 or 1.0
            lo, hi = lo - delta, hi + delta
        span = (hi - lo) * pad
        return cls(lo - span, hi + span)

    def fraction(self, value: float) -> float:
        """Position of ``value`` in the range, clamped to [0, 1]."""
        if self.log:
            if value <= 0:
                return 0.0
            lo, hi, v = math.log10(self.lo), math.log10(self.hi), math.log10(value)
        else:
            lo, hi, v = self.lo, self.hi, value
        if hi == lo:
            return 0.5
        return min(max((v - lo) / (hi - lo), 0.0), 1.0)

    def ticks(self, count: int = 5) -> list[float]:
        """Round values inside the range for axis labels: decades on a log scale."""
        if self.log:
            first, last = math.ceil(math.log10(self.lo)), math.floor(math.log10(self.hi))
            decades = list(range(first - 1, last + 1))
            if last - first < 2:  # few decades: 2 and 5 times each power of ten too
                ticks = [m * 10.0**e for e in decades for m in (1, 2, 5)]
            else:
                step = max(1, math.ceil((last - first + 1) / count))
                ticks = [10.0**e for e in range(first, last + 1)[::step]]
            ticks = [t for t in ticks if self.lo <= t * (1 + 1e-9) and t <= self.hi * (1 + 1e-9)]
            return ticks or [self.lo, self.hi]
        raw = (self.hi - self.lo) / max(count - 1, 1)
        magnitude = 10 ** math.floor(math.log10(raw))
        step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
        start = math.ceil(self.lo / step) * step
        ticks = []
        value = start
        while value <= self.hi + step * 1e-9:
            ticks.append(round(value, 12))
            value += step
        return ticks


@dataclass(frozen=True)
class Series:
    """One line of a chart; segments break where the values stopped being finite."""

    name: str
    label: str
    segments: tuple[tuple[Point, ...], ...]

    @property
    def points(self) -> list[Point]:
        return [p for segment in self.segments for p in segment]


@dataclass(frozen=True)
class BestPoint:
    step: float
    value: float
    epoch: int | None

    @property
    def label(self) -> str:
        where = f"step {_int(self.step)}" + (
            f", epoch {self.epoch}" if self.epoch is not None else ""
        )
        return f"best validation loss {format_number(self.value)} ({where})"


@dataclass(frozen=True)
class LossChart:
    train: Series | None  # raw (thinned) training loss
    smooth: Series | None  # EMA of the training loss, for long runs
    val: Series | None
    best: BestPoint | None
    chance: float | None
    chance_label: str | None
    nonfinite_step: float | None  # first step whose loss was NaN/Inf
    epoch_starts: tuple[float, ...]
    x: Scale
    y: Scale
    steps: int  # training-loss values recorded (before thinning)

    @property
    def main(self) -> Series | None:
        """The training line to emphasize: the smoothed one when there is one."""
        return self.smooth or self.train


@dataclass(frozen=True)
class Bar:
    name: str
    value: float | None  # None: nothing finite was measured
    samples: int = 0
    nonfinite: int = 0
    flagged: bool = False

    def status(self, chart: BarChart) -> str:
        """good / warn / bad by the chart's bands, 'neutral' without bands, 'missing'."""
        if self.value is None:
            return "missing"
        if chart.band is None:
            return "neutral"
        lo, hi = chart.band
        if lo <= self.value <= hi:
            return "good"
        outer = chart.outer or chart.band
        return "warn" if outer[0] <= self.value <= outer[1] else "bad"


@dataclass(frozen=True)
class BarChart:
    name: str
    title: str
    unit: str
    bars: tuple[Bar, ...]
    scale: Scale
    reference: float | None = None
    band: tuple[float, float] | None = None
    outer: tuple[float, float] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Pictures:
    loss: LossChart | None
    bars: tuple[BarChart, ...]

    def __bool__(self) -> bool:
        return self.loss is not None or bool(self.bars)


def pictures(report: Report) -> Pictures:
    """Every chart the report's data supports, in the order reporters show them."""
    trace = report.trace
    flagged_by: dict[str, set[str]] = {}
    for finding in report.findings:
        if finding.location and finding.location.layer:
            flagged_by.setdefault(finding.name, set()).add(finding.location.layer)
    all_flagged = set().union(*flagged_by.values()) if flagged_by else set()
    bars = [
        gradient_norm_chart(trace, flagged=all_flagged),
        update_ratio_chart(trace, flagged=all_flagged),
    ]
    if "activation-variance-unstable" in report.checks_run:
        bars.append(
            activation_chart(trace, flagged=flagged_by.get("activation-variance-unstable", set()))
        )
    return Pictures(loss_chart(trace), tuple(b for b in bars if b is not None))


# -- loss curves ------------------------------------------------------------------------------
def loss_chart(trace: Trace) -> LossChart | None:
    """Training and validation loss over optimizer steps; None when nothing was recorded."""
    if trace.mode in MODES_WITHOUT_CURVES:
        return None
    raw = [
        (float(s["step"]), float(s["loss"]))
        for s in trace.steps
        if isinstance(s.get("step"), int | float) and _is_number(s.get("loss"))
    ]
    source = evaluation_source(trace)  # one curve, not a trainer's copy of the same passes
    evals = [
        e
        for e in trace.evals
        if isinstance(e.get("step"), int | float)
        and _is_number(e.get("val_loss"))
        and str(e.get("source", "loss")) == (source or "loss")
    ]
    if not raw and not evals:
        return None

    nonfinite = [x for x, y in raw if not math.isfinite(y)]
    nonfinite += [
        float(e["step"])
        for e in trace.events
        if e.get("kind") == "nonfinite" and e.get("what") == "loss" and _is_number(e.get("step"))
    ]
    train = _series("train", "training loss", thin(raw)) if raw else None
    smooth = None
    finite_raw = [(x, y) for x, y in raw if math.isfinite(y)]
    if len(finite_raw) > SMOOTH_ABOVE:
        smooth = _series("smooth", "training loss (EMA)", thin(ema(raw)))

    val_points = [(float(e["step"]), float(e["val_loss"])) for e in evals]
    val = _series("val", "validation loss", val_points) if val_points else None
    best = _best(evals, trace.epochs)

    chance, chance_label = _chance(trace)
    epoch_starts = tuple(
        float(e["start_step"]) for e in trace.epochs if _is_number(e.get("start_step"))
    )

    xs = [x for x, _ in raw] + [x for x, _ in val_points]
    ys = [y for _, y in finite_raw] + [y for _, y in val_points if math.isfinite(y)]
    if chance is not None and ys:
        ys.append(chance)
    # a single step still gets a width, so its point lands in the middle
    x_scale = Scale(min(xs), max(xs)) if min(xs) < max(xs) else Scale(xs[0] - 0.5, xs[0] + 0.5)
    return LossChart(
        train=train,
        smooth=smooth,
        val=val,
        best=best,
        chance=chance,
        chance_label=chance_label,
        nonfinite_step=min(nonfinite) if nonfinite else None,
        epoch_starts=epoch_starts,
        x=x_scale,
        y=Scale.fit(ys, pad=0.05),
        steps=len(raw),
    )


def ema(points: Sequence[Point], span: int | None = None) -> list[Point]:
    """Bias-corrected exponential moving average (TensorBoard's smoothing); non-finite values
    are skipped so one NaN does not erase the rest of the curve."""
    finite = [(x, y) for x, y in points if math.isfinite(y)]
    if span is None:
        span = max(2, len(finite) // 25)
    beta = 1.0 - 2.0 / (span + 1)
    average, weight, smoothed = 0.0, 0.0, []
    for x, y in finite:
        average = beta * average + (1 - beta) * y
        weight = beta * weight + (1 - beta)
        smoothed.append((x, average / weight))
    return smoothed


def thin(points: Sequence[Point], limit: int = MAX_POINTS) -> list[Point]:
    """At most ``limit`` points: the lowest and highest point of each bucket, in step order.
    Non-finite points pass through (they split the line)."""
    if len(points) <= limit:
        return list(points)
    buckets = limit // 2
    size = len(points) / buckets
    kept: list[Point] = []
    for index in range(buckets):
        bucket = points[int(index * size) : int((index + 1) * size)]
        finite = [p for p in bucket if math.isfinite(p[1])]
        if len(finite) < len(bucket):  # keep the break where the loss went non-finite
            first_bad = next(p for p in bucket if not math.isfinite(p[1]))
            kept.append(first_bad)
        if finite:
            low = min(finite, key=lambda p: p[1])
            high = max(finite, key=lambda p: p[1])
            kept.extend(sorted({low, high}))
    return sorted(kept, key=lambda p: p[0])


def _series(name: str, label: str, points: Sequence[Point]) -> Series | None:
    segments: list[tuple[Point, ...]] = []
    current: list[Point] = []
    for x, y in points:
        if math.isfinite(y):
            current.append((x, y))
        elif current:
            segments.append(tuple(current))
            current = []
    if current:
        segments.append(tuple(current))
    return Series(name, label, tuple(segments)) if segments else None


def _best(evals: list[dict[str, Any]], epochs: list[dict[str, Any]]) -> BestPoint | None:
    finite = [e for e in evals if math.isfinite(e["val_loss"])]
    if not finite:
        return None
    best = min(finite, key=lambda e: e["val_loss"])  # the first of equals: the earliest
    epoch = best.get("epoch")
    if epoch is None:
        epoch = _epoch_at(best["step"], epochs)
    return BestPoint(float(best["step"]), float(best["val_loss"]), epoch)


def _epoch_at(step: float, epochs: list[dict[str, Any]]) -> int | None:
    found = None
    for entry in epochs:
        start = entry.get("start_step")
        if _is_number(start) and start <= step and _is_number(entry.get("epoch")):
            found = int(entry["epoch"])
    return found


def _chance(trace: Trace) -> tuple[float | None, str | None]:
    events = trace.training_losses()
    if not events or events[0].get("reduction") == "sum":
        return None, None  # a summed loss is on another scale than the per-example chance
    chance = chance_level(events)
    if chance is None:
        return None, None
    if abs(chance.prior - chance.uniform) <= 1e-3 * max(chance.uniform, 1e-12):
        return chance.uniform, f"chance {format_number(chance.uniform)} ({chance.description})"
    return chance.prior, f"chance {format_number(chance.prior)} (best constant prediction)"


# -- per-layer bars ---------------------------------------------------------------------------
def gradient_norm_chart(trace: Trace, *, flagged: set[str] | None = None) -> BarChart | None:
    """Median gradient norm per layer over the sampled steps."""
    values = _per_layer(trace, lambda stats: stats.get("grad_norm"))
    if not values:
        return None
    bars = _bars(trace, values, flagged or set())
    return BarChart(
        name="grad_norm",
        title="gradient norm by layer (median over sampled steps)",
        unit="‖∇w‖",
        bars=bars,
        scale=_bar_scale(bars),
    )


def update_ratio_chart(trace: Trace, *, flagged: set[str] | None = None) -> BarChart | None:
    """Median ‖Δw‖/‖w‖ per layer over the sampled steps, against the 1e-3 rule of thumb."""

    def ratio(stats: dict[str, Any]) -> float | None:
        update, norm = stats.get("update_norm"), stats.get("param_norm")
        if not _is_number(update) or not _is_number(norm):
            return None
        if norm == 0:
            return math.inf if update else None
        return update / norm

    values = _per_layer(trace, ratio)
    if not values:
        return None
    bars = _bars(trace, values, flagged or set())
    return BarChart(
        name="update_ratio",
        title="update / weight ratio by layer (median over sampled steps)",
        unit="‖Δw‖/‖w‖",
        bars=bars,
        scale=_bar_scale(bars, include=UPDATE_RATIO_BAND),
        reference=UPDATE_RATIO_REFERENCE,
        band=UPDATE_RATIO_BAND,
        outer=UPDATE_RATIO_OUTER,
        notes=("reference ≈ 1e-3 per step (CS231n); the band is a decade either side",),
    )


def activation_chart(trace: Trace, *, flagged: set[str] | None = None) -> BarChart | None:
    """Activation std relative to the network input per Linear/conv layer, at init."""
    chain = signal_chain(trace)
    if sum(1 for layer in chain if math.isfinite(layer.relative) and layer.relative > 0) < 2:
        return None
    flagged = flagged or set()
    bars = tuple(
        Bar(
            name=layer.name,
            value=layer.relative if math.isfinite(layer.relative) and layer.relative > 0 else None,
            samples=1,
            flagged=layer.name in flagged,
        )
        for layer in chain
    )
    scale = _bar_scale(bars, include=(1e-1, 1e1))
    # bars grow from 1 (the input's scale) towards either side: keep 1 inside the range
    return BarChart(
        name="activation_std",
        title="activation std relative to the input, by layer (at init)",
        unit="std / input std",
        bars=bars,
        scale=scale,
        reference=1.0,
        band=ACTIVATION_BAND,
        outer=ACTIVATION_OUTER,
    )


def _per_layer(trace: Trace, measure: Any) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    if trace.mode in MODES_WITHOUT_CURVES:  # one pre-flight step is not a training history
        return values
    for entry in trace.gradients:
        for name, stats in (entry.get("layers") or {}).items():
            value = measure(stats) if isinstance(stats, dict) else None
            if _is_number(value):
                values.setdefault(name, []).append(float(value))
    return values


def _bars(trace: Trace, values: dict[str, list[float]], flagged: set[str]) -> tuple[Bar, ...]:
    order = {name: index for index, name in enumerate(trace.layer_order())}
    first_seen = {name: index for index, name in enumerate(values)}
    names = sorted(values, key=lambda n: (n not in order, order.get(n, 0), first_seen[n]))
    bars = []
    for name in names:
        finite = [v for v in values[name] if math.isfinite(v)]
        bars.append(
            Bar(
                name=name,
                value=statistics.median(finite) if finite else None,
                samples=len(values[name]),
                nonfinite=len(values[name]) - len(finite),
                flagged=name in flagged,
            )
        )
    return tuple(bars)


def _bar_scale(bars: Sequence[Bar], include: tuple[float, float] | None = None) -> Scale:
    positive = [b.value for b in bars if b.value is not None and b.value > 0]
    if include:
        positive += list(include)
    if not positive:
        return Scale(1e-3, 1.0, log=True)
    lo, hi = min(positive), max(positive)
    # whole decades, clamped: a zero-initialized layer's 1e-30 must not squash the others
    # (the smallest bar keeps some length: a value at a power of ten opens one more decade)
    lo_e = max(math.floor(math.log10(lo) - 1e-9), math.floor(math.log10(hi)) - 12)
    hi_e = math.ceil(math.log10(hi))
    if hi_e == lo_e:
        hi_e += 1
    return Scale(10.0**lo_e, 10.0**hi_e, log=True)


# -- formatting shared by the reporters -------------------------------------------------------
def format_number(value: float) -> str:
    """Short labels: 3 significant digits, whole numbers below 1e5, compact exponents."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if value == 0:
        return "0"
    if 1e3 <= abs(value) < 1e5:
        return f"{value:.0f}"
    text = f"{value:.2g}" if abs(value) >= 1e5 or abs(value) < 1e-3 else f"{value:.3g}"
    mantissa, _, exponent = text.partition("e")
    return f"{mantissa}e{int(exponent)}" if exponent else text


def _int(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else format_number(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
