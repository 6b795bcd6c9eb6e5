"""The human report: a summary line, one panel per finding, and charts where checks ran."""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from babysit.check import Finding, Severity

if TYPE_CHECKING:
    from babysit.report import Report

STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "bold yellow", Severity.INFO: "bold cyan"}
ICON = {Severity.ERROR: "✗", Severity.WARNING: "!", Severity.INFO: "i"}


def print_report(report: Report, file: IO[str] | None = None, *, verbose: bool = False) -> None:
    stream = file or sys.stdout
    console = Console(
        file=stream,
        width=None if _is_terminal(stream) else 100,
        highlight=False,
        soft_wrap=report.trace.mode == "lint",  # lint: one line per finding, never wrapped
    )
    for renderable in renderables(report, verbose=verbose):
        console.print(renderable)


def render(report: Report, *, color: bool = False, width: int = 100) -> str:
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        force_terminal=color,
        no_color=not color,
        highlight=False,
        soft_wrap=report.trace.mode == "lint",
    )
    for renderable in renderables(report):
        console.print(renderable)
    return buffer.getvalue()


def render_plain(report: Report, findings: Sequence[Finding]) -> str:
    """Plain text for exception messages and ``str(report)``: no colors, no boxes."""
    lines = [_summary_text(report).plain]
    for finding in findings:
        lines.append("")
        lines.append(f"{finding.severity.value} {finding.id} {finding.name}: {finding.message}")
        if finding.location:
            lines.append(f"  at {finding.location}")
        for key, value in finding.evidence.items():
            lines.append(f"  {key}: {_format_value(value)}")
        lines.append("  fix: " + finding.fix.replace("\n", "\n       "))
    return "\n".join(lines)


def renderables(report: Report, *, verbose: bool = False) -> list[Any]:
    if report.trace.mode == "lint":  # many findings with a file position: one line each
        from babysit.lint.render import lint_renderables

        return lint_renderables(report)
    items: list[Any] = [_summary_text(report)]
    for finding in report.findings:
        items.append(_panel(finding))
    experiments = experiment_summary(report)
    if experiments is not None:
        items.append(experiments)
    items.extend(picture_panels(report))
    if report.skipped and (verbose or not report.findings):
        skipped = ", ".join(f"{name} ({why})" for name, why in sorted(report.skipped.items()))
        items.append(Text(f"not run: {skipped}", style="dim"))
    for note in report.trace.notes:
        items.append(Text(f"note: {note}", style="dim"))
    for error in report.trace.errors:
        items.append(
            Text(f"babysit internal error in {error['probe']}: {error['error']}", style="red")
        )
    return items


def _summary_text(report: Report) -> Text:
    counts = report.summary
    trace = report.trace
    failing = counts["error"] or counts["warning"]
    text = Text()
    text.append("babysit ", style="bold")
    text.append(f"{report.target or trace.mode}", style="bold")
    details = [trace.mode]
    steps = trace.run.get("optimizer_steps")
    if steps:
        details.append(f"{steps} optimizer steps")
    if trace.run.get("stopped_by"):
        details.append(f"stopped by {trace.run['stopped_by']}")
    text.append(f" ({', '.join(details)}): ", style="dim")
    if not report.findings and trace.mode == "audit" and not trace.facts.get("models"):
        text.append("nothing judged: no model was seen training", style="bold yellow")
    elif not report.findings:
        text.append("✓ no findings", style="bold green")
    else:
        parts = []
        for severity in (Severity.ERROR, Severity.WARNING, Severity.INFO):
            n = counts[severity.value]
            if n:
                parts.append((f"{n} {severity.value}{'s' if n > 1 else ''}", STYLE[severity]))
        text.append("✗ " if failing else "", style="bold red")
        for index, (label, style) in enumerate(parts):
            if index:
                text.append(", ")
            text.append(label, style=style)
    text.append(f" · {len(report.checks_run)} checks run", style="dim")
    if report.skipped:
        text.append(f", {len(report.skipped)} not run", style="dim")
    return text


def _panel(finding: Finding) -> Panel:
    style = STYLE[finding.severity]
    body: list[Any] = [Text(finding.message)]
    if finding.location:
        body.append(Text(f"at {finding.location}", style="dim"))
    evidence = {k: v for k, v in finding.evidence.items() if k != "also_explains"}
    if evidence:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="dim")
        table.add_column()
        for key, value in evidence.items():
            table.add_row(key, Text(_format_value(value)))
        body.append(Text("evidence", style="bold"))
        body.append(table)
    consequences = finding.evidence.get("also_explains")
    if consequences:
        body.append(Text("this also explains", style="bold"))
        for line in consequences:
            body.append(Text(f"  • {line}"))
    body.append(Text("fix", style="bold"))
    body.append(Markdown(finding.fix))
    title = Text.assemble(
        (f"{ICON[finding.severity]} {finding.severity.value} ", style),
        (f"{finding.id} ", "bold"),
        (finding.name, style),
    )
    return Panel(Group(*body), title=title, title_align="left", border_style=style)


def experiment_lines(experiments: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(experiment, status, what it measured) for the pre-flight protocol's results."""
    rows = []
    for name, result in experiments.items():
        if name == "protocol" or not isinstance(result, dict):
            continue
        label = name.replace("_", " ")
        if "skipped" in result:
            rows.append((label, "skipped", result["skipped"]))
        elif "skipped_run" in result:
            rows.append((label, "n/a", result["skipped_run"]))
        else:
            rows.append((label, "ran", _measured(name, result)))
    return rows


def _measured(name: str, result: dict[str, Any]) -> str:
    if name in ("overfit", "regularization") and result.get("initial_loss") is not None:
        text = (
            f"{result['steps']} steps: loss {result['initial_loss']:.3g} → "
            f"{result['final_loss']:.3g}"
        )
        if result.get("samples"):
            text = f"{result['samples']} samples, {text}"
        if result.get("accuracy") is not None:
            text += f", accuracy {result['accuracy']:.0%}"
        return text
    if name == "gradients":
        bad = sum(len(result.get(k) or []) for k in ("no_grad", "zero_grad", "not_in_optimizer"))
        return f"{result['parameters']} parameter tensors, {bad} without a working gradient"
    if name == "batch_mixing":
        worst = max((r["others_max"] for r in result.get("rows", [])), default=0.0)
        return f"{result['samples']} samples, largest cross-sample gradient {worst:.3g}"
    if name == "verified_fixes":
        return ", ".join(sorted(k for k in result if k != "seconds"))
    return ""


def experiment_summary(report: Report) -> Panel | None:
    rows = experiment_lines(report.trace.experiments)
    if not rows:
        return None
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column()
    for label, status, text in rows:
        style = {"ran": "green", "n/a": "dim"}.get(status, "yellow")
        table.add_row(label, Text(status, style=style), text)
    seconds = report.trace.experiments.get("protocol", {}).get("seconds")
    title = "pre-flight experiments (on copies)" + (f", {seconds:.1f} s" if seconds else "")
    return Panel(table, title=title, title_align="left", border_style="dim")


def picture_panels(report: Report) -> list[Panel]:
    """The loss curve and the per-layer bars that the recorded data supports."""
    from babysit.charts import pictures
    from babysit.reporters.text_charts import bar_panel, loss_panel

    shown = pictures(report)
    panels = [loss_panel(shown.loss)] if shown.loss is not None else []
    return panels + [bar_panel(chart) for chart in shown.bars]


def activation_chart(report: Report) -> Panel | None:
    """Bars of activation std / input std per Linear/conv layer, in forward order."""
    from babysit.charts import activation_chart as chart_model
    from babysit.reporters.text_charts import bar_panel

    flagged = {
        f.location.layer
        for f in report.findings
        if f.name == "activation-variance-unstable" and f.location
    }
    chart = chart_model(report.trace, flagged=flagged)
    return bar_panel(chart) if chart is not None else None


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        shown = ", ".join(_format_value(v) for v in value[:8])
        return f"[{shown}{', …' if len(value) > 8 else ''}]"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_format_value(v)}" for k, v in value.items())
    return str(value)


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
