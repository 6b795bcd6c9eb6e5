"""A self-contained HTML report: one file, inline CSS and SVG, no JavaScript, no network.

The page can be attached to a CI run or mailed around and opens anywhere the same way: it
loads nothing (no fonts, images or scripts), so it also renders offline and cannot leak the
run's data to a third party. Every text that comes from the run (layer names, messages,
script paths) is escaped.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from babysit._version import __version__
from babysit.charts import Bar, BarChart, LossChart, Scale, format_number, pictures
from babysit.check import Finding, Severity

if TYPE_CHECKING:
    from babysit.report import Report

# loss chart geometry (SVG user units)
LOSS_W, LOSS_H = 980, 360
LOSS_MARGIN = {"left": 64, "right": 24, "top": 16, "bottom": 44}
# bar chart geometry
BAR_ROW, BAR_AREA, BAR_VALUE_W = 24, 420, 110
MAX_EPOCH_LINES = 30

CSS = """
:root {
  --bg: #ffffff; --fg: #1b1d21; --dim: #555b66; --card: #f6f7f9; --line: #d5d9e0;
  --error: #b3261e; --warning: #8a5a00; --info: #0b61a4; --ok: #1e7a34;
  --train: #1f5fbf; --train-raw: #9bb5e0; --val: #b0306b; --best: #e0a000;
  --chance: #6b7280; --nonfinite: #c62828; --band: #e3f1e6;
  --good: #2e8b47; --warn: #c99400; --bad: #c62828; --neutral: #3b74c4;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #15171b; --fg: #e6e8eb; --dim: #a3a9b3; --card: #1e2127; --line: #3a3f48;
    --error: #ff8a80; --warning: #ffcc66; --info: #82c4ff; --ok: #7bd88f;
    --train: #7fb0ff; --train-raw: #3f5a85; --val: #ff7fb5; --best: #ffd54f;
    --chance: #9aa1ab; --nonfinite: #ff6e6e; --band: #1f3325;
    --good: #5ccf7a; --warn: #e8c04a; --bad: #ff6e6e; --neutral: #7fb0ff;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1080px; margin: 0 auto; padding: 24px; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.25em; margin: 32px 0 12px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
h3 { font-size: 1.05em; margin: 0 0 8px; }
.dim { color: var(--dim); }
.summary { font-size: 1.1em; margin: 8px 0 0; }
.count-error { color: var(--error); font-weight: 600; }
.count-warning { color: var(--warning); font-weight: 600; }
.count-info { color: var(--info); font-weight: 600; }
.count-ok { color: var(--ok); font-weight: 600; }
.finding { background: var(--card); border: 1px solid var(--line); border-left: 6px solid;
  border-radius: 6px; padding: 14px 18px; margin: 0 0 16px; }
.finding.error { border-left-color: var(--error); }
.finding.warning { border-left-color: var(--warning); }
.finding.info { border-left-color: var(--info); }
.badge { display: inline-block; font-size: 0.8em; font-weight: 700; text-transform: uppercase;
  letter-spacing: 0.04em; padding: 1px 8px; border-radius: 10px; margin-right: 8px;
  border: 1.5px solid currentColor; }
.badge.error { color: var(--error); } .badge.warning { color: var(--warning); }
.badge.info { color: var(--info); }
.finding .id { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
table { border-collapse: collapse; margin: 6px 0 10px; }
caption { text-align: left; caption-side: top; padding-bottom: 2px; }
th, td { text-align: left; padding: 3px 14px 3px 0; vertical-align: top; }
th { color: var(--dim); font-weight: 600; }
table.evidence td:first-child { color: var(--dim); white-space: nowrap; }
td.num { font-variant-numeric: tabular-nums; }
pre { background: var(--bg); border: 1px solid var(--line); border-radius: 4px;
  padding: 8px 12px; overflow-x: auto; font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo,
  Consolas, monospace; }
.fix p { margin: 4px 0; white-space: pre-wrap; }
.status-ran { color: var(--ok); } .status-skipped { color: var(--warning); }
.chart { background: var(--card); border: 1px solid var(--line); border-radius: 6px;
  padding: 12px 16px; margin: 0 0 16px; }
.chart svg { display: block; height: auto; max-width: 100%; }
.legend { list-style: none; padding: 0; margin: 8px 0 0; display: flex; flex-wrap: wrap;
  gap: 4px 20px; }
.swatch { display: inline-block; width: 22px; height: 0; vertical-align: middle;
  margin-right: 6px; border-top: 3px solid; }
.swatch.dot { width: 11px; height: 11px; border: 0; border-radius: 50%; }
svg text { fill: var(--fg); font: 12px system-ui, -apple-system, "Segoe UI", sans-serif; }
svg text.dim { fill: var(--dim); }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg .axis { stroke: var(--dim); stroke-width: 1; }
svg .epoch { stroke: var(--line); stroke-width: 1; stroke-dasharray: 2 4; }
svg .train { fill: none; stroke: var(--train); stroke-width: 2; stroke-linejoin: round; }
svg .train-raw { fill: none; stroke: var(--train-raw); stroke-width: 1; }
svg .val { fill: none; stroke: var(--val); stroke-width: 2; }
svg .val-point { fill: var(--val); }
svg .best { fill: var(--best); stroke: var(--fg); stroke-width: 1.5; }
svg .chance { stroke: var(--chance); stroke-width: 1.5; stroke-dasharray: 6 4; }
svg .nonfinite { stroke: var(--nonfinite); stroke-width: 2; stroke-dasharray: 4 3; }
svg text.nonfinite-label { fill: var(--nonfinite); font-weight: 600; }
svg .band { fill: var(--band); }
svg .reference { stroke: var(--dim); stroke-width: 1.5; stroke-dasharray: 4 3; }
svg .bar-good { fill: var(--good); } svg .bar-warn { fill: var(--warn); }
svg .bar-bad { fill: var(--bad); } svg .bar-neutral { fill: var(--neutral); }
svg text.flagged { font-weight: 700; fill: var(--error); }
code { font: 0.92em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
footer { margin: 40px 0 0; font-size: 0.9em; }
"""


def render(report: Report) -> str:
    """The report as one HTML page (a string; the caller writes it)."""
    target = report.target or report.trace.mode
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light dark">',
        f"<title>babysit report: {_e(target)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
        f"<h1>babysit report: {_e(target)}</h1>",
        _summary(report),
        _findings(report.findings),
        _experiments(report),
        _charts(report),
        _details(report),
        f'<footer class="dim">babysit {_e(__version__)}</footer>',
        "</main>",
        "</body>",
        "</html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


# -- summary, findings, tables ----------------------------------------------------------------
def _summary(report: Report) -> str:
    trace = report.trace
    details = [trace.mode]
    if trace.run.get("optimizer_steps"):
        details.append(f"{trace.run['optimizer_steps']} optimizer steps")
    if trace.run.get("epochs"):
        details.append(f"{trace.run['epochs']} epochs")
    if trace.run.get("stopped_by"):
        details.append(f"stopped by {trace.run['stopped_by']}")
    counts = report.summary
    if not report.findings and trace.mode == "audit" and not trace.facts.get("models"):
        verdict = '<span class="count-warning">nothing judged: no model was seen training</span>'
    elif not report.findings:
        verdict = '<span class="count-ok">✓ no findings</span>'
    else:
        verdict = ", ".join(
            f'<span class="count-{s.value}">{counts[s.value]} {s.value}'
            f"{'s' if counts[s.value] > 1 else ''}</span>"
            for s in (Severity.ERROR, Severity.WARNING, Severity.INFO)
            if counts[s.value]
        )
    checks = f"{len(report.checks_run)} checks run"
    if report.skipped:
        checks += f", {len(report.skipped)} not run"
    return (
        f'<p class="summary">{verdict} <span class="dim">· {_e(checks)}</span></p>\n'
        f'<p class="dim">{_e(", ".join(details))}</p>'
    )


def _findings(findings: list[Finding]) -> str:
    if not findings:
        return ""
    out = [
        '<section aria-labelledby="findings-heading">',
        '<h2 id="findings-heading">Findings</h2>',
    ]
    for finding in findings:
        severity = finding.severity.value
        out.append(f'<article class="finding {severity}" id="{_e(finding.id)}">')
        out.append(
            f'<h3><span class="badge {severity}">{severity}</span>'
            f'<span class="id">{_e(finding.id)}</span> {_e(finding.name)}</h3>'
        )
        out.append(f'<p class="message">{_e(finding.message)}</p>')
        if finding.location:
            out.append(f'<p class="dim">at {_e(str(finding.location))}</p>')
        evidence = {k: v for k, v in finding.evidence.items() if k != "also_explains"}
        if evidence:
            out.append('<table class="evidence"><caption class="dim">evidence</caption>')
            for key, value in evidence.items():
                out.append(f"<tr><td>{_e(key)}</td><td>{_e(_format_value(value))}</td></tr>")
            out.append("</table>")
        consequences = finding.evidence.get("also_explains")
        if consequences:
            out.append("<p><strong>This also explains</strong></p><ul>")
            out.extend(f"<li>{_e(str(line))}</li>" for line in consequences)
            out.append("</ul>")
        out.append(f'<div class="fix"><p><strong>Fix</strong></p>{_fix(finding.fix)}</div>')
        out.append("</article>")
    out.append("</section>")
    return "\n".join(out)


_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)


def _fix(text: str) -> str:
    """Prose as paragraphs, fenced code blocks as <pre>: the fixes are small Markdown."""
    out, position = [], 0
    for match in _FENCE.finditer(text):
        out.append(_prose(text[position : match.start()]))
        out.append(f"<pre><code>{_e(match.group(1).rstrip())}</code></pre>")
        position = match.end()
    out.append(_prose(text[position:]))
    return "".join(out)


_INLINE_CODE = re.compile(r"`([^`\n]+)`")


def _prose(text: str) -> str:
    text = text.strip()
    if not text:
        return ""
    return "<p>" + _INLINE_CODE.sub(r"<code>\1</code>", _e(text)) + "</p>"


def _experiments(report: Report) -> str:
    from babysit.reporters.text import experiment_lines

    rows = experiment_lines(report.trace.experiments)
    if not rows:
        return ""
    seconds = report.trace.experiments.get("protocol", {}).get("seconds")
    caption = "Run on copies of the model" + (f", {seconds:.1f} s" if seconds else "")
    out = [
        '<section aria-labelledby="experiments-heading">',
        '<h2 id="experiments-heading">Pre-flight experiments</h2>',
        f'<table class="experiments"><caption class="dim">{_e(caption)}</caption>',
        "<tr><th>experiment</th><th>status</th><th>what it measured</th></tr>",
    ]
    for label, status, text in rows:
        out.append(
            f'<tr><td>{_e(label)}</td><td class="status-{_e(status.replace("/", ""))}">'
            f"{_e(status)}</td><td>{_e(text)}</td></tr>"
        )
    out.append("</table></section>")
    return "\n".join(out)


def _details(report: Report) -> str:
    out = []
    if report.skipped:
        out.append(f"<h2>Checks not run ({len(report.skipped)})</h2><ul>")
        out.extend(
            f"<li>{_e(name)} <span class='dim'>({_e(why)})</span></li>"
            for name, why in sorted(report.skipped.items())
        )
        out.append("</ul>")
    if report.trace.notes:
        out.append("<h2>Notes</h2><ul>")
        out.extend(f"<li>{_e(note)}</li>" for note in report.trace.notes)
        out.append("</ul>")
    if report.trace.errors:
        out.append("<h2>babysit internal errors</h2><ul>")
        out.extend(
            f"<li>{_e(str(e.get('probe')))}: {_e(str(e.get('error')))}</li>"
            for e in report.trace.errors
        )
        out.append("</ul>")
    return "\n".join(out)


# -- charts -----------------------------------------------------------------------------------
def _charts(report: Report) -> str:
    shown = pictures(report)
    if not shown:
        return ""
    out = ['<section aria-labelledby="charts-heading">', '<h2 id="charts-heading">Charts</h2>']
    if shown.loss is not None:
        out.append(loss_svg(shown.loss))
    out.extend(bar_svg(chart) for chart in shown.bars)
    out.append("</section>")
    return "\n".join(out)


def loss_svg(chart: LossChart) -> str:
    """The loss figure: an SVG with the curves and an HTML legend under it."""
    left, top = LOSS_MARGIN["left"], LOSS_MARGIN["top"]
    width = LOSS_W - left - LOSS_MARGIN["right"]
    height = LOSS_H - top - LOSS_MARGIN["bottom"]

    def px(x: float) -> float:
        return left + chart.x.fraction(x) * width

    def py(y: float) -> float:
        return top + (1 - chart.y.fraction(y)) * height

    title = "Loss over optimizer steps" + (" (log scale)" if chart.y.log else "")
    svg = [_svg_open("loss-chart", LOSS_W, LOSS_H, title, _loss_description(chart))]
    for tick in chart.y.ticks():
        y = py(tick)
        svg.append(_line(left, y, left + width, y, "grid"))
        svg.append(_text(left - 6, y + 4, format_number(tick), anchor="end", cls="dim"))
    for tick in _step_ticks(chart.x):
        x = px(tick)
        svg.append(_line(x, top, x, top + height, "grid"))
        svg.append(_text(x, top + height + 16, _step(tick), anchor="middle", cls="dim"))
    # an epoch boundary every few pixels is noise, not information
    for start in chart.epoch_starts[1:] if len(chart.epoch_starts) <= MAX_EPOCH_LINES else ():
        svg.append(_line(px(start), top, px(start), top + height, "epoch"))
    svg.append(_line(left, top + height, left + width, top + height, "axis"))
    svg.append(_line(left, top, left, top + height, "axis"))
    svg.append(_text(left + width / 2, LOSS_H - 6, "optimizer step", anchor="middle", cls="dim"))
    svg.append(
        f'<text class="dim" transform="translate(14 {top + height / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">loss</text>'
    )
    if chart.chance is not None:
        y = py(chart.chance)
        svg.append(_line(left, y, left + width, y, "chance"))
        svg.append(_text(left + width - 4, y + 15, "chance", anchor="end", cls="dim"))
    if chart.smooth is not None and chart.train is not None:
        svg.extend(_polylines(chart.train.segments, "train-raw", px, py))
    if chart.main is not None:
        svg.extend(_polylines(chart.main.segments, "train", px, py, name=chart.main.name))
    if chart.val is not None:
        svg.extend(_polylines(chart.val.segments, "val", px, py, name="val", dots=False))
        for x, y in chart.val.points:
            svg.append(
                f'<circle class="val-point" cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5">'
                f"<title>validation loss {_e(format_number(y))} at step {_e(_step(x))}</title>"
                "</circle>"
            )
    if chart.nonfinite_step is not None:
        x = px(chart.nonfinite_step)
        svg.append(_line(x, top, x, top + height, "nonfinite"))
        label = f"loss not finite from step {_step(chart.nonfinite_step)}"
        anchor = "end" if x > left + width / 2 else "start"
        svg.append(
            _text(x + (-6 if anchor == "end" else 6), top + 14, label, anchor, "nonfinite-label")
        )
    if chart.best is not None:
        x, y = px(chart.best.step), py(chart.best.value)
        svg.append(
            f'<circle class="best" data-step="{_e(_step(chart.best.step))}" cx="{x:.1f}" '
            f'cy="{y:.1f}" r="6.5"><title>{_e(chart.best.label)}</title></circle>'
        )
        anchor = "end" if x > left + width * 0.7 else "start"
        svg.append(
            _text(x + (-10 if anchor == "end" else 10), y + 18, "best", anchor=anchor, cls="dim")
        )
    svg.append("</svg>")
    return _figure("".join(svg), _loss_legend(chart))


def _loss_legend(chart: LossChart) -> str:
    items = []
    if chart.main is not None:
        label = chart.main.label + f" ({chart.steps} steps)"
        items.append(_swatch("var(--train)") + _e(label))
        if chart.smooth is not None:
            items.append(_swatch("var(--train-raw)") + "training loss (raw)")
    if chart.val is not None:
        n = len(chart.val.points)
        items.append(_swatch("var(--val)") + f"validation loss ({n} pass{'es' if n != 1 else ''})")
    if chart.best is not None:
        items.append(_swatch("var(--best)", dot=True) + _e(chart.best.label))
    if chart.chance_label:
        items.append(_swatch("var(--chance)", dashed=True) + _e(chart.chance_label))
    if chart.nonfinite_step is not None:
        items.append(
            _swatch("var(--nonfinite)", dashed=True)
            + _e(f"loss became NaN/Inf at step {_step(chart.nonfinite_step)}")
        )
    if 1 < len(chart.epoch_starts) <= MAX_EPOCH_LINES:
        items.append(
            _swatch("var(--line)", dashed=True) + f"epoch starts ({len(chart.epoch_starts)})"
        )
    return '<ul class="legend">' + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


def _loss_description(chart: LossChart) -> str:
    parts = []
    main = chart.main
    if main is not None and main.points:
        first, last = main.points[0], main.points[-1]
        parts.append(
            f"{main.label} from {format_number(first[1])} at step {_step(first[0])} "
            f"to {format_number(last[1])} at step {_step(last[0])}"
        )
    if chart.best is not None:
        parts.append(chart.best.label)
    if chart.nonfinite_step is not None:
        parts.append(f"loss not finite from step {_step(chart.nonfinite_step)}")
    return "; ".join(parts) or "no finite loss values"


def bar_svg(chart: BarChart) -> str:
    """Horizontal bars on a log axis, one row per layer, with the reference band shaded."""
    label_w = min(max((len(b.name) for b in chart.bars), default=4) * 7.5 + 24, 260)
    top, axis_h = 8, 34
    width = label_w + BAR_AREA + BAR_VALUE_W
    height = top + BAR_ROW * len(chart.bars) + axis_h

    def px(value: float) -> float:
        return label_w + chart.scale.fraction(value) * BAR_AREA

    rows_bottom = top + BAR_ROW * len(chart.bars)
    description = "; ".join(f"{b.name}: {_bar_value(chart, b)}" for b in chart.bars)
    svg = [_svg_open(f"{chart.name}-chart", width, height, chart.title, description)]
    if chart.band is not None:
        x0, x1 = px(chart.band[0]), px(chart.band[1])
        svg.append(
            f'<rect class="band" x="{x0:.1f}" y="{top}" width="{x1 - x0:.1f}" '
            f'height="{rows_bottom - top}"><title>expected range {_e(format_number(chart.band[0]))}'
            f"–{_e(format_number(chart.band[1]))}</title></rect>"
        )
    for tick in chart.scale.ticks(count=8):
        x = px(tick)
        svg.append(_line(x, top, x, rows_bottom, "grid"))
        svg.append(_text(x, rows_bottom + 14, format_number(tick), anchor="middle", cls="dim"))
    svg.append(
        _text(
            label_w + BAR_AREA / 2,
            rows_bottom + 30,
            f"{chart.unit} (log scale)",
            anchor="middle",
            cls="dim",
        )
    )
    origin = px(chart.reference) if chart.reference is not None else label_w
    for index, bar in enumerate(chart.bars):
        y = top + index * BAR_ROW
        name_cls = "flagged" if bar.flagged else ""
        name = bar.name + (" ◀" if bar.flagged else "")
        svg.append(_text(label_w - 8, y + BAR_ROW / 2 + 4, name, anchor="end", cls=name_cls))
        if bar.value is not None:
            end = px(bar.value) if bar.value > 0 else label_w
            x0, x1 = sorted((origin, end))
            x1 = max(x1, x0 + 2)  # a value at the origin still shows
            svg.append(
                f'<rect class="bar-{bar.status(chart)}" data-layer="{_e(bar.name)}" '
                f'x="{x0:.1f}" y="{y + 4:.1f}" width="{x1 - x0:.1f}" height="{BAR_ROW - 8}">'
                f"<title>{_e(bar.name)}: {_e(_bar_value(chart, bar))}</title></rect>"
            )
        svg.append(
            _text(label_w + BAR_AREA + 8, y + BAR_ROW / 2 + 4, _bar_value(chart, bar), cls="dim")
        )
    if chart.reference is not None:
        svg.append(_line(origin, top, origin, rows_bottom, "reference"))
    svg.append("</svg>")
    notes = "".join(f'<p class="dim">{_e(note)}</p>' for note in chart.notes)
    return _figure("".join(svg), notes, heading=chart.title)


def _bar_value(chart: BarChart, bar: Bar) -> str:
    if bar.value is None:
        return "NaN" if bar.nonfinite else "n/a"
    text = format_number(bar.value) + ("×" if chart.name == "activation_std" else "")
    if bar.nonfinite:
        text += f" ({bar.nonfinite} NaN/Inf)"
    return text


# -- SVG helpers ------------------------------------------------------------------------------
def _svg_open(ident: str, width: float, height: float, title: str, description: str) -> str:
    return (
        f'<svg id="{_e(ident)}" viewBox="0 0 {width:.0f} '
        f'{height:.0f}" width="{width:.0f}" height="{height:.0f}" role="img" '
        f'aria-labelledby="{_e(ident)}-title {_e(ident)}-desc">'
        f'<title id="{_e(ident)}-title">{_e(title)}</title>'
        f'<desc id="{_e(ident)}-desc">{_e(description)}</desc>'
    )


def _figure(svg: str, below: str, heading: str | None = None) -> str:
    head = f"<h3>{_e(heading)}</h3>" if heading else ""
    return f'<figure class="chart">{head}{svg}{below}</figure>'


def _polylines(
    segments: Iterable[tuple[tuple[float, float], ...]],
    cls: str,
    px: Any,
    py: Any,
    name: str | None = None,
    dots: bool = True,
) -> list[str]:
    lines = []
    for segment in segments:
        if len(segment) == 1:  # a single point draws no line: show a dot
            if not dots:
                continue
            x, y = segment[0]
            lines.append(
                f'<circle class="{cls}-point" style="fill: var(--{cls})" cx="{px(x):.1f}" '
                f'cy="{py(y):.1f}" r="3"/>'
            )
            continue
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in segment)
        data = f' data-series="{_e(name)}"' if name else ""
        lines.append(f'<polyline class="{cls}"{data} points="{points}"/>')
    return lines


def _line(x0: float, y0: float, x1: float, y1: float, cls: str) -> str:
    return f'<line class="{cls}" x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}"/>'


def _text(x: float, y: float, text: str, anchor: str = "start", cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<text{klass} x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{_e(text)}</text>'


def _swatch(color: str, *, dot: bool = False, dashed: bool = False) -> str:
    if dot:
        return f'<span class="swatch dot" style="background: {color}"></span>'
    style = f"border-top-color: {color}" + ("; border-top-style: dashed" if dashed else "")
    return f'<span class="swatch" style="{style}"></span>'


def _step_ticks(scale: Scale) -> list[float]:
    ticks = [t for t in scale.ticks(count=8) if float(t).is_integer() or scale.hi - scale.lo < 4]
    return ticks or [scale.lo, scale.hi]


def _step(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else format_number(value)


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return format_number(value) if not math.isfinite(value) else f"{value:.4g}"
    if isinstance(value, list):
        shown = ", ".join(_format_value(v) for v in value[:12])
        return f"[{shown}{', …' if len(value) > 12 else ''}]"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_format_value(v)}" for k, v in value.items())
    return str(value)


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
