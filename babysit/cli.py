"""The ``babysit`` command line.

Exit codes (stable, documented in the README):
  0  nothing at or above --fail-on
  1  findings at or above --fail-on
  2  usage or configuration error
  3  internal error in babysit
  4  the audited script failed before it could be judged
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from babysit._version import __version__

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL, EXIT_SCRIPT_FAILED = 0, 1, 2, 3, 4

app = typer.Typer(
    name="babysit",
    help="The training babysitter for PyTorch: finds the bugs that don't crash.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class Format(str, Enum):
    text = "text"
    json = "json"


class CatalogFormat(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"


class FailOn(str, Enum):
    error = "error"
    warning = "warning"
    info = "info"
    never = "never"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"babysit {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """The training babysitter for PyTorch."""


SelectOpt = Annotated[
    list[str] | None,
    typer.Option("--select", help="Only these checks (ids, id prefixes such as BS1, or names)."),
]
IgnoreOpt = Annotated[
    list[str] | None,
    typer.Option("--ignore", help="Skip these checks; ID:layer skips one check on one layer."),
]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Report format.")]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write the report to this file.")
]
FailOnOpt = Annotated[
    FailOn, typer.Option("--fail-on", help="Lowest severity that makes the exit code 1.")
]


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def audit(
    ctx: typer.Context,
    script: Annotated[Path, typer.Argument(help="The training script to run.")],
    max_steps: Annotated[
        int,
        typer.Option(help="Stop after this many optimizer steps; 0 lets the script finish."),
    ] = 200,
    max_time: Annotated[
        float, typer.Option(help="Stop after this many seconds; 0 for no limit.")
    ] = 0.0,
    sample_every: Annotated[
        int, typer.Option(help="Take layer statistics every N-th step (at most).")
    ] = 10,
    overhead_budget: Annotated[
        float,
        typer.Option(
            help="Sample less often when statistics would cost more than this fraction of "
            "the training time; 0 samples exactly every --sample-every steps."
        ),
    ] = 0.03,
    fmt: FormatOpt = Format.text,
    output: OutputOpt = None,
    fail_on: FailOnOpt = FailOn.error,
    select: SelectOpt = None,
    ignore: IgnoreOpt = None,
    save_trace: Annotated[
        Path | None,
        typer.Option("--trace", help="Also save the recorded trace (JSON) for `babysit report`."),
    ] = None,
    preflight: Annotated[
        bool,
        typer.Option(
            help="Run the pre-flight experiments (overfit a tiny batch, ...) on the model and "
            "batch captured at the first training step."
        ),
    ] = True,
    preflight_budget: Annotated[
        float, typer.Option(help="Seconds for the pre-flight experiments.")
    ] = 30.0,
) -> None:
    """Run SCRIPT unmodified under instrumentation and report what is wrong with its training.

    Arguments after `--` go to the script: babysit audit train.py --max-steps 50 -- --lr 3e-4
    """
    from babysit.audit import audit as run_audit
    from babysit.errors import BabysitError
    from babysit.report import judge

    script_args = list(ctx.args)
    if (
        max_steps < 0
        or max_time < 0
        or sample_every < 1
        or preflight_budget <= 0
        or overhead_budget < 0
    ):
        _usage(
            "--max-steps, --max-time and --overhead-budget must be >= 0, --sample-every >= 1 and "
            "--preflight-budget > 0"
        )
    try:
        judge_args = {"select": select, "ignore": ignore}
        judge(_empty_trace(), **judge_args)  # validate selectors before running anything
        machine = fmt is not Format.text and output is None
        with _progress() as progress:
            trace, outcome = run_audit(
                script,
                script_args,
                max_steps=max_steps or None,
                max_time=max_time or None,
                sample_every=sample_every,
                overhead_budget=overhead_budget or None,
                # keep stdout parseable: the script's own prints go to stderr instead
                script_stdout=sys.stderr if machine else None,
                preflight=preflight,
                preflight_budget=preflight_budget,
                progress=progress,
            )
        if save_trace is not None:
            trace.save(save_trace)
        report = judge(trace, **judge_args)
    except BabysitError as exc:
        _usage(str(exc))
    except Exception:
        _internal()
    _emit(report, fmt, output)
    if outcome.failed:
        typer.echo(
            f"babysit: the script failed ({outcome.error or f'exit code {outcome.exit_code}'}); "
            "the report above covers what ran before it stopped.",
            err=True,
        )
        raise typer.Exit(EXIT_SCRIPT_FAILED)
    raise typer.Exit(report.exit_code(fail_on.value))


@app.command()
def report(
    trace_file: Annotated[Path, typer.Argument(help="A trace saved with `audit --trace`.")],
    fmt: FormatOpt = Format.text,
    output: OutputOpt = None,
    fail_on: FailOnOpt = FailOn.error,
    select: SelectOpt = None,
    ignore: IgnoreOpt = None,
) -> None:
    """Judge a saved trace again (for example with other checks or thresholds)."""
    from babysit.errors import BabysitError
    from babysit.report import judge
    from babysit.trace import Trace

    try:
        trace = Trace.load(trace_file)
        result = judge(trace, select=select, ignore=ignore)
    except FileNotFoundError:
        _usage(f"no such trace file: {trace_file}")
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        _usage(f"{trace_file} is not a babysit trace: {exc}")
    except BabysitError as exc:
        _usage(str(exc))
    _emit(result, fmt, output)
    raise typer.Exit(result.exit_code(fail_on.value))


@app.command()
def checks(
    fmt: Annotated[CatalogFormat, typer.Option("--format", "-f")] = CatalogFormat.text,
) -> None:
    """List the catalog of checks."""
    from babysit import registry

    catalog = registry.all_checks()
    if fmt is CatalogFormat.json:
        typer.echo(json.dumps([c.metadata() for c in catalog], indent=2))
    elif fmt is CatalogFormat.markdown:
        typer.echo(registry.catalog_markdown())
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(show_header=True, header_style="bold", box=None)
        for column in ("id", "name", "severity", "what it finds"):
            table.add_column(column)
        for check in catalog:
            table.add_row(check.id, check.name, check.severity.value, check.summary)
        Console(width=None if sys.stdout.isatty() else 120).print(table)


@app.command()
def explain(
    check_id: Annotated[str, typer.Argument(metavar="ID_OR_NAME", help="e.g. BS101")],
) -> None:
    """Print a check's documentation: what it does, why, example, fix, thresholds."""
    from rich.console import Console
    from rich.markdown import Markdown

    from babysit import registry
    from babysit.errors import BabysitError

    try:
        check = registry.get(check_id)
    except BabysitError as exc:
        _usage(str(exc))
    console = Console(width=None if sys.stdout.isatty() else 100)
    console.print(
        f"[bold]{check.id} {check.name}[/bold] (default severity: {check.severity.value})"
    )
    console.print(Markdown(registry.explain_markdown(check)))


def _emit(report, fmt: Format, output: Path | None) -> None:
    from babysit.reporters import render

    if fmt is Format.text and output is None:
        report.print()
        return
    text = render(report, fmt.value)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        _usage(f"cannot write the report to {output}: {exc}")
    if fmt is not Format.text:
        report.print()  # stdout is free: the machine-readable report went to the file


@contextlib.contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    """A transient progress bar on stderr for the pre-flight experiments."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    bar = Progress(
        TextColumn("[bold]babysit pre-flight[/bold] {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    task = None

    def update(description: str, done: int, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(description, total=total)
        bar.update(task, description=description, completed=done)

    try:
        yield update
    finally:
        bar.stop()


def _empty_trace():
    from babysit.trace import Trace

    return Trace()


def _usage(message: str) -> None:
    typer.echo(f"babysit: error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def _internal() -> None:
    typer.echo(
        "babysit: internal error (a bug in babysit, please report it):\n" + traceback.format_exc(),
        err=True,
    )
    raise typer.Exit(EXIT_INTERNAL)


def main() -> None:
    try:
        app()
    except SystemExit:
        raise
    except Exception:
        sys.stderr.write(
            "babysit: internal error (a bug in babysit, please report it):\n"
            + traceback.format_exc()
        )
        sys.exit(EXIT_INTERNAL)
