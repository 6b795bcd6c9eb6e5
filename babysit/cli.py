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
    """Report formats, shared by every command that reports findings."""

    text = "text"
    json = "json"
    sarif = "sarif"
    junit = "junit"
    github = "github"


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
FormatOpt = Annotated[
    Format | None,
    typer.Option(
        "--format",
        "-f",
        help="Report format: text, json, sarif (code scanning), junit, github (annotations and "
        "step summary). Default: `format` in [tool.babysit], else text.",
        show_default=False,
    ),
]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write the report to this file.")
]
FailOnOpt = Annotated[
    FailOn | None,
    typer.Option(
        "--fail-on",
        help="Lowest severity that makes the exit code 1. Default: `fail-on` in "
        "[tool.babysit], else error.",
        show_default=False,
    ),
]
BaselineOpt = Annotated[
    Path | None,
    typer.Option(
        "--baseline",
        metavar="FILE",
        help="Report only findings that are not in FILE (written with --write-baseline).",
    ),
]
WriteBaselineOpt = Annotated[
    Path | None,
    typer.Option(
        "--write-baseline",
        metavar="FILE",
        help="Record today's findings in FILE as accepted: they no longer count, here or in "
        "later runs with --baseline FILE.",
    ),
]
HtmlOpt = Annotated[
    Path | None,
    typer.Option(
        "--html",
        metavar="FILE",
        help="Also write a self-contained HTML report (charts included) to FILE.",
    ),
]


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def audit(
    ctx: typer.Context,
    script: Annotated[Path, typer.Argument(help="The training script to run.")],
    max_steps: Annotated[
        int | None,
        typer.Option(
            help="Stop after this many optimizer steps; 0 lets the script finish. [default: 200]",
            show_default=False,
        ),
    ] = None,
    max_time: Annotated[
        float | None,
        typer.Option(
            help="Stop after this many seconds; 0 for no limit. [default: 0]", show_default=False
        ),
    ] = None,
    max_epochs: Annotated[
        int | None,
        typer.Option(
            help="Stop when this many training epochs are done; 0 for no limit. [default: 0]",
            show_default=False,
        ),
    ] = None,
    sample_every: Annotated[
        int | None,
        typer.Option(
            help="Take layer statistics every N-th step (at most). [default: 10]",
            show_default=False,
        ),
    ] = None,
    overhead_budget: Annotated[
        float | None,
        typer.Option(
            help="Sample less often when statistics would cost more than this fraction of "
            "the training time; 0 samples exactly every --sample-every steps. [default: 0.03]",
            show_default=False,
        ),
    ] = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    fail_on: FailOnOpt = None,
    select: SelectOpt = None,
    ignore: IgnoreOpt = None,
    baseline: BaselineOpt = None,
    write_baseline: WriteBaselineOpt = None,
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
        float | None,
        typer.Option(
            help="Seconds for the pre-flight experiments. [default: 30]", show_default=False
        ),
    ] = None,
    html: HtmlOpt = None,
) -> None:
    """Run SCRIPT unmodified under instrumentation and report what is wrong with its training.

    Arguments after `--` go to the script: babysit audit train.py --max-steps 50 -- --lr 3e-4

    Options not given here come from [tool.babysit] in the nearest pyproject.toml.
    """
    from babysit.audit import audit as run_audit
    from babysit.errors import BabysitError
    from babysit.report import judge

    script_args = list(ctx.args)
    settings = _settings(
        script,
        select=select,
        ignore=ignore,
        fail_on=fail_on,
        format=fmt,
        max_steps=max_steps,
        max_time=max_time,
        max_epochs=max_epochs,
        sample_every=sample_every,
        overhead_budget=overhead_budget,
        preflight_budget=preflight_budget,
    )
    fmt, fail_on = Format(settings.format), FailOn(settings.fail_on)
    max_epochs = settings.max_epochs
    select, ignore = settings.select, list(settings.ignore)
    max_steps, max_time = settings.max_steps, settings.max_time
    sample_every, overhead_budget = settings.sample_every, settings.overhead_budget
    preflight_budget = settings.preflight_budget
    accepted = _load_baseline(baseline)
    _check_writable(write_baseline, "--write-baseline")
    if (
        max_steps < 0
        or max_time < 0
        or max_epochs < 0
        or sample_every < 1
        or preflight_budget <= 0
        or overhead_budget < 0
    ):
        _usage(
            "--max-steps, --max-epochs, --max-time and --overhead-budget must be >= 0, "
            "--sample-every >= 1 and --preflight-budget > 0"
        )
    _check_html_path(html)  # before the run, not after minutes of training
    try:
        judge_args = {"select": select, "ignore": ignore, "thresholds": settings.thresholds}
        judge(_empty_trace(), **judge_args)  # validate selectors before running anything
        machine = fmt is not Format.text and output is None
        with _progress() as progress:
            trace, outcome = run_audit(
                script,
                script_args,
                max_steps=max_steps or None,
                max_time=max_time or None,
                max_epochs=max_epochs or None,
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
    report = _use_baseline(report, accepted, write_baseline)
    _emit(report, fmt, output, fail_on=fail_on)
    _write_html(report, html)
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
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    fail_on: FailOnOpt = None,
    select: SelectOpt = None,
    ignore: IgnoreOpt = None,
    baseline: BaselineOpt = None,
    write_baseline: WriteBaselineOpt = None,
    html: HtmlOpt = None,
) -> None:
    """Judge a saved trace again (for example with other checks or thresholds)."""
    from babysit.errors import BabysitError
    from babysit.report import judge
    from babysit.trace import Trace

    settings = _settings(trace_file, select=select, ignore=ignore, fail_on=fail_on, format=fmt)
    fmt, fail_on = Format(settings.format), FailOn(settings.fail_on)
    accepted = _load_baseline(baseline)
    try:
        trace = Trace.load(trace_file)
        result = judge(
            trace, select=settings.select, ignore=settings.ignore, thresholds=settings.thresholds
        )
    except FileNotFoundError:
        _usage(f"no such trace file: {trace_file}")
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        _usage(f"{trace_file} is not a babysit trace: {exc}")
    except BabysitError as exc:
        _usage(str(exc))
    _check_html_path(html)
    result = _use_baseline(result, accepted, write_baseline)
    _emit(result, fmt, output, fail_on=fail_on)
    _write_html(result, html)
    raise typer.Exit(result.exit_code(fail_on.value))


@app.command()
def lint(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Python files, or directories searched recursively for *.py."),
    ],
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    fail_on: FailOnOpt = None,
    select: SelectOpt = None,
    ignore: IgnoreOpt = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", metavar="GLOB", help="Skip files and directories matching GLOB."),
    ] = None,
    baseline: BaselineOpt = None,
    write_baseline: WriteBaselineOpt = None,
) -> None:
    """Read training scripts without running them and report the bugs visible in the code
    (the static rules, BS9xx). `# babysit: ignore[BS903]` on a line silences it there.

    Options not given here come from [tool.babysit] in the nearest pyproject.toml."""
    from babysit.errors import BabysitError
    from babysit.lint import lint_selection, lint_trace, static_selection
    from babysit.report import judge

    settings = _settings(
        paths[0] if paths else None,
        select=select,
        ignore=ignore,
        fail_on=fail_on,
        format=fmt,
        exclude=exclude,
    )
    fmt, fail_on = Format(settings.format), FailOn(settings.fail_on)
    accepted = _load_baseline(baseline)
    _check_writable(write_baseline, "--write-baseline")
    try:
        # the file's `select` may list only runtime checks: then it does not narrow the lint
        chosen = select if select is not None else lint_selection(settings.select)
        plain_ignore = [i for i in settings.ignore if ":" not in i]  # ID:layer: no layers here
        rules = static_selection(chosen, plain_ignore)
        trace = lint_trace(paths, settings.exclude)
        result = judge(trace, select=rules, ignore=settings.ignore)
    except BabysitError as exc:
        _usage(str(exc))
    except Exception:
        _internal()
    result = _use_baseline(result, accepted, write_baseline)
    _emit(result, fmt, output, fail_on=fail_on)
    raise typer.Exit(result.exit_code(fail_on.value))


@app.command("check")
def check_factory(
    factory: Annotated[
        str,
        typer.Argument(
            metavar="MODULE:FACTORY",
            help="A function taking no arguments that returns (model, (inputs, targets), "
            "loss_fn[, optimizer]) or a dict of them; MODULE is a dotted name or a .py file.",
        ),
    ],
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    fail_on: FailOnOpt = None,
    select: SelectOpt = None,
    ignore: IgnoreOpt = None,
    budget: Annotated[
        float | None,
        typer.Option(
            help="Seconds for the pre-flight experiments. Default: `preflight-budget` in "
            "[tool.babysit], else 30.",
            show_default=False,
        ),
    ] = None,
    experiments: Annotated[
        bool,
        typer.Option(
            help="Run the experiments (overfit a tiny batch, ...); without them only the "
            "checks of one forward pass run."
        ),
    ] = True,
    seed: Annotated[
        int, typer.Option(help="Seed torch and random before calling the factory.")
    ] = 0,
    baseline: BaselineOpt = None,
    write_baseline: WriteBaselineOpt = None,
    html: HtmlOpt = None,
) -> None:
    """Pre-flight the model that FACTORY builds, without running any training script.

    babysit check tests/models.py:make_model --fail-on warning
    """
    from babysit.errors import BabysitError
    from babysit.factory import FactoryFailed, load
    from babysit.report import judge

    module = Path(factory.rpartition(":")[0])
    settings = _settings(
        module if module.suffix == ".py" and module.is_file() else None,
        select=select,
        ignore=ignore,
        fail_on=fail_on,
        format=fmt,
        preflight_budget=budget,
    )
    fmt, fail_on = Format(settings.format), FailOn(settings.fail_on)
    judge_args = {"select": settings.select, "ignore": settings.ignore}
    judge_args["thresholds"] = settings.thresholds
    if settings.preflight_budget <= 0:
        _usage("--budget must be > 0 seconds")
    accepted = _load_baseline(baseline)
    _check_writable(write_baseline, "--write-baseline")
    _check_html_path(html)
    try:
        judge(_empty_trace(), **judge_args)  # validate before importing the user's code
        problem = load(factory, seed=seed)
    except FactoryFailed as exc:
        typer.echo(f"babysit: {exc}\n\n{exc.traceback.rstrip()}", err=True)
        raise typer.Exit(EXIT_SCRIPT_FAILED) from None
    except BabysitError as exc:
        _usage(str(exc))
    try:
        from babysit.api import check as run_check

        result = run_check(
            problem.model,
            problem.inputs,
            problem.targets,
            loss_fn=problem.loss_fn,
            optimizer=problem.optimizer,
            experiments=experiments,
            budget=settings.preflight_budget,
            **judge_args,
        )
    except BabysitError as exc:
        _usage(f"{factory}: {exc}")
    except Exception:
        _internal()
    if problem.source:
        result.trace.run["source"] = problem.source  # CI annotations point at the factory
    result = _use_baseline(result, accepted, write_baseline)
    _emit(result, fmt, output, fail_on=fail_on)
    _write_html(result, html)
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


def _emit(report, fmt: Format, output: Path | None, *, fail_on: FailOn | str = "error") -> None:
    from babysit.reporters import render

    if fmt is Format.text and output is None:
        report.print()
        return
    text = render(report, fmt.value, fail_on=getattr(fail_on, "value", fail_on))
    if fmt is Format.github:
        from babysit.reporters.github import write_step_summary

        try:
            write_step_summary(report)
        except OSError as exc:
            typer.echo(f"babysit: cannot append to $GITHUB_STEP_SUMMARY: {exc}", err=True)
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


def _settings(start: Path | None, **given):
    """``[tool.babysit]`` from the nearest pyproject.toml (above ``start``, else the working
    directory), with the flags given on the command line (not None) on top."""
    from babysit.config import load_config
    from babysit.errors import BabysitError

    try:
        config = load_config(start, Path.cwd()) if start is not None else load_config()
        return config.merge(**given)
    except BabysitError as exc:
        _usage(str(exc))


def _load_baseline(path: Path | None):
    if path is None:
        return None
    from babysit.baseline import load_baseline
    from babysit.errors import BabysitError

    try:
        return load_baseline(path)
    except BabysitError as exc:
        _usage(str(exc))


def _check_writable(path: Path | None, option: str) -> None:
    if path is not None and (path.is_dir() or not path.parent.is_dir()):
        _usage(f"{option} {path}: not a file in an existing directory")


def _use_baseline(report, accepted, write_to: Path | None):
    """Record the findings in ``write_to`` (then they count as accepted), and drop the
    findings a baseline accepts, saying how many."""
    from babysit.baseline import apply_baseline, load_baseline, write_baseline
    from babysit.errors import BabysitError

    if write_to is not None:
        try:
            count = write_baseline(report, write_to)
            accepted = load_baseline(write_to)
        except BabysitError as exc:
            _usage(str(exc))
        typer.echo(f"babysit: recorded {count} finding(s) in the baseline {write_to}", err=True)
    if accepted is None:
        return report
    report = apply_baseline(report, accepted)
    if report.baselined:
        typer.echo(
            f"babysit: {report.baselined} finding(s) accepted by the baseline {accepted.path} "
            "are not shown",
            err=True,
        )
    return report


def _check_html_path(path: Path | None) -> None:
    if path is None:
        return
    if path.is_dir():
        _usage(f"--html {path} is a directory; give a file name such as report.html")
    if not path.parent.is_dir():
        _usage(f"cannot write the HTML report to {path}: no such directory {path.parent}")


def _write_html(report, path: Path | None) -> None:
    if path is None:
        return
    from babysit.reporters import render

    try:
        path.write_text(render(report, "html"), encoding="utf-8")
    except OSError as exc:
        _usage(f"cannot write the HTML report to {path}: {exc}")


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
