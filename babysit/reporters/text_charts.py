"""Terminal drawings of the chart models in :mod:`babysit.charts` (rich renderables).

The loss curve is drawn with braille dots (2x4 dots per cell) so a 60x10 panel still shows the
shape of the curve; validation passes, the best one and the chance level are drawn with their
own characters, so the plot stays readable without colours.
"""

from __future__ import annotations

import itertools
import math

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from babysit.charts import Bar, BarChart, LossChart, Scale, format_number

PLOT_WIDTH, PLOT_HEIGHT = 60, 10
BAR_WIDTH = 30

TRAIN_STYLE, VAL_STYLE, BEST_STYLE = "cyan", "magenta", "bold yellow"
CHANCE_STYLE, NONFINITE_STYLE = "dim", "bold red"
VAL_MARK, BEST_MARK, CHANCE_MARK, NONFINITE_MARK = "●", "★", "┄", "✗"
BAR_STYLE = {"good": "green", "warn": "yellow", "bad": "red", "neutral": "cyan"}

# braille dot bits for (column, row) inside a 2x4 cell
_DOTS = {
    (0, 0): 0x01,
    (0, 1): 0x02,
    (0, 2): 0x04,
    (0, 3): 0x40,
    (1, 0): 0x08,
    (1, 1): 0x10,
    (1, 2): 0x20,
    (1, 3): 0x80,
}


def loss_panel(chart: LossChart, width: int = PLOT_WIDTH, height: int = PLOT_HEIGHT) -> Panel:
    cells: list[list[tuple[str, str] | None]] = [[None] * width for _ in range(height)]

    def cell_of(x: float, y: float) -> tuple[int, int]:
        col = round(chart.x.fraction(x) * (width - 1))
        row = round((1 - chart.y.fraction(y)) * (height - 1))
        return row, col

    if chart.chance is not None:
        row, _ = cell_of(chart.x.lo, chart.chance)
        for col in range(width):
            cells[row][col] = (CHANCE_MARK, CHANCE_STYLE)
    line = chart.main
    if line is not None:
        for (row, col), char in _braille(line.segments, chart.x, chart.y, width, height).items():
            cells[row][col] = (char, TRAIN_STYLE)
    if chart.val is not None:
        for x, y in chart.val.points:
            row, col = cell_of(x, y)
            cells[row][col] = (VAL_MARK, VAL_STYLE)
    if chart.best is not None:
        row, col = cell_of(chart.best.step, chart.best.value)
        cells[row][col] = (BEST_MARK, BEST_STYLE)
    if chart.nonfinite_step is not None:
        _, col = cell_of(chart.nonfinite_step, chart.y.lo)
        cells[0][col] = (NONFINITE_MARK, NONFINITE_STYLE)

    labels = {0: format_number(chart.y.hi), height - 1: format_number(chart.y.lo)}
    if height >= 5:
        middle = (height - 1) // 2
        mid_value = _value_at(chart.y, 1 - middle / (height - 1))
        labels[middle] = format_number(mid_value)
    gutter = max(len(label) for label in labels.values())
    rows: list[Text] = []
    for index, row_cells in enumerate(cells):
        text = Text(f"{labels.get(index, ''):>{gutter}} ", style="dim")
        text.append("┤" if index in labels else "│", style="dim")
        for cell in row_cells:
            if cell is None:
                text.append(" ")
            else:
                text.append(cell[0], style=cell[1])
        rows.append(text)
    rows.append(Text(" " * (gutter + 1) + "└" + "─" * width, style="dim"))
    left, right = f"step {_step(chart.x.lo)}", f"step {_step(chart.x.hi)}"
    rows.append(
        Text(" " * (gutter + 2) + left + right.rjust(max(width - len(left), len(right) + 1))),
    )
    rows[-1].stylize("dim")
    rows.extend(_legend(chart))
    title = "loss" + (" (log scale)" if chart.y.log else "")
    return Panel(Group(*rows), title=title, title_align="left", border_style="dim", expand=False)


def _legend(chart: LossChart) -> list[Text]:
    """One line per series, so the panel stays as narrow as the plot."""
    parts: list[tuple[str, str, str]] = []
    if chart.main is not None:
        label = chart.main.label + (f", {chart.steps} steps" if chart.steps else "")
        parts.append(("⣿", TRAIN_STYLE, label))
    if chart.val is not None:
        parts.append((VAL_MARK, VAL_STYLE, f"validation loss, {len(chart.val.points)} passes"))
    if chart.best is not None:
        parts.append((BEST_MARK, BEST_STYLE, chart.best.label))
    if chart.chance_label:
        parts.append((CHANCE_MARK, CHANCE_STYLE, chart.chance_label))
    if chart.nonfinite_step is not None:
        parts.append(
            (
                NONFINITE_MARK,
                NONFINITE_STYLE,
                f"loss not finite from step {_step(chart.nonfinite_step)}",
            )
        )
    return [Text.assemble((mark, style), f" {label}") for mark, style, label in parts]


def _braille(
    segments: tuple[tuple[tuple[float, float], ...], ...],
    x: Scale,
    y: Scale,
    width: int,
    height: int,
) -> dict[tuple[int, int], str]:
    """Braille characters by (row, col) for the polyline through each segment's points."""
    pw, ph = width * 2, height * 4
    bits: dict[tuple[int, int], int] = {}

    def dot(px: int, py: int) -> None:
        key = (py // 4, px // 2)
        bits[key] = bits.get(key, 0) | _DOTS[(px % 2, py % 4)]

    for segment in segments:
        pixels = [
            (round(x.fraction(a) * (pw - 1)), round((1 - y.fraction(b)) * (ph - 1)))
            for a, b in segment
        ]
        dot(*pixels[0])
        for (x0, y0), (x1, y1) in itertools.pairwise(pixels):
            steps = max(abs(x1 - x0), abs(y1 - y0), 1)
            for i in range(1, steps + 1):
                dot(round(x0 + (x1 - x0) * i / steps), round(y0 + (y1 - y0) * i / steps))
    return {key: chr(0x2800 + value) for key, value in bits.items()}


def bar_panel(chart: BarChart, width: int = BAR_WIDTH) -> Panel:
    """One row per layer: a bar on the chart's log scale, from the reference value (when the
    chart has one) or from the left edge, and the value."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    for bar in chart.bars:
        name = bar.name + (" ←" if bar.flagged else "")
        # Text, not str: a name is data, never rich markup
        table.add_row(Text(name), _bar_text(chart, bar, width), Text(_bar_label(chart, bar)))
    body: list = [table]
    axis = f"log scale {format_number(chart.scale.lo)} … {format_number(chart.scale.hi)}"
    if chart.reference is not None:
        axis += f", │ = {format_number(chart.reference)}"
    if chart.band is not None:
        axis += f", ░ = {format_number(chart.band[0])}–{format_number(chart.band[1])}"
    body.append(Text(axis, style="dim"))
    body.extend(Text(note, style="dim") for note in chart.notes)
    return Panel(
        Group(*body), title=chart.title, title_align="left", border_style="dim", expand=False
    )


def _bar_text(chart: BarChart, bar: Bar, width: int) -> Text:
    if bar.value is None:
        return Text("?", style="dim")
    status = bar.status(chart)

    def col(value: float) -> int:
        return min(round(chart.scale.fraction(value) * width), width)

    start = col(chart.reference) if chart.reference is not None else 0
    end = col(bar.value) if bar.value > 0 else 0
    lo, hi = sorted((start, end))
    if lo == hi:  # always show something: a value at the reference gets one cell
        hi = min(lo + 1, width)
        lo = hi - 1
    band = (col(chart.band[0]), col(chart.band[1])) if chart.band else None
    text = Text()
    for index in range(width):
        if lo <= index < hi:
            text.append("█", style=BAR_STYLE.get(status, "dim"))
        elif chart.reference is not None and index == start:
            text.append("│", style="dim")
        elif band and band[0] <= index < band[1]:
            text.append("░", style="dim")
        else:
            text.append(" ")
    return text


def _bar_label(chart: BarChart, bar: Bar) -> str:
    if bar.value is None:
        return "NaN" if bar.nonfinite else "n/a"
    label = format_number(bar.value) + ("×" if chart.name == "activation_std" else "")
    if bar.nonfinite:
        label += f" ({bar.nonfinite} NaN)"
    return label


def _value_at(scale: Scale, fraction: float) -> float:
    if scale.log:
        lo, hi = math.log10(scale.lo), math.log10(scale.hi)
        return 10 ** (lo + (hi - lo) * fraction)
    return scale.lo + (scale.hi - scale.lo) * fraction


def _step(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else format_number(value)
