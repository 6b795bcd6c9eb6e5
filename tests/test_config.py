"""[tool.babysit] in pyproject.toml: discovery, validation, and CLI > file > defaults."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import blobs, mlp
from torch import nn
from typer.testing import CliRunner

import babysit
from babysit.cli import FailOn, app
from babysit.config import Config, find_config, load_config, read_config
from babysit.errors import BabysitError

runner = CliRunner()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="module")
def broken_trace(tmp_path_factory) -> Path:
    """A saved trace of a real pre-flight: dead ReLUs after layer `3` (BS105, warning) and
    inputs on a large scale (BS201, warning)."""
    torch.manual_seed(0)
    x, y = blobs(64)
    model = mlp()
    with torch.no_grad():
        model[2].bias.fill_(-100.0)
    report = babysit.check(model, x * 50, y, loss_fn=nn.CrossEntropyLoss(), experiments=False)
    names = {(f.id, f.location.layer if f.location else None) for f in report.findings}
    assert {("BS105", "3"), ("BS201", None)} <= names
    path = tmp_path_factory.mktemp("trace") / "trace.json"
    report.trace.save(path)
    return path


@pytest.fixture
def project(tmp_path, broken_trace, monkeypatch) -> Path:
    """A project folder holding the trace; the working directory for the CLI."""
    (tmp_path / "trace.json").write_text(broken_trace.read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    return tmp_path


def report_json(*args: str) -> tuple[int, dict | None, str]:
    result = runner.invoke(app, ["report", "trace.json", "--format", "json", *args])
    data = json.loads(result.stdout) if result.exit_code in (0, 1) else None
    return result.exit_code, data, result.stderr


# -- discovery and parsing ----------------------------------------------------------------------


def test_the_nearest_pyproject_that_has_the_table_wins(tmp_path):
    outer = write(tmp_path / "pyproject.toml", '[tool.babysit]\nfail-on = "warning"\n')
    write(tmp_path / "pkg" / "pyproject.toml", '[project]\nname = "pkg"\n')  # no table: skipped
    script = write(tmp_path / "pkg" / "sub" / "train.py", "")
    assert find_config(script) == outer
    assert load_config(script).fail_on == "warning"
    inner = write(tmp_path / "pkg" / "sub" / "pyproject.toml", "[tool.babysit]\nmax-steps = 7\n")
    config = load_config(script)
    assert config.path == inner and config.max_steps == 7 and config.fail_on == "error"


def test_without_a_table_anywhere_the_defaults_apply(tmp_path):
    write(tmp_path / "pyproject.toml", "[tool.ruff]\nline-length = 99\n")
    assert load_config(tmp_path) == Config()
    assert load_config(tmp_path).source == "the defaults"


def test_every_key_is_read(tmp_path):
    path = write(
        tmp_path / "pyproject.toml",
        """
        [tool.babysit]
        select = ["BS1", "dead-relu"]
        ignore = ["BS105:encoder", "BS201"]
        fail-on = "Warning"
        max-steps = 50
        max-time = 60
        sample-every = 5
        overhead-budget = 0.1
        preflight-budget = 12.5
        format = "sarif"
        exclude = ["build/*"]

        [tool.babysit.thresholds.BS101]
        ratio_above = 2.0

        [tool.babysit.thresholds.dead-relu]
        max_dead_fraction = 0.7
        """,
    )
    config = read_config(path)
    assert config.select == ("BS1", "dead-relu")
    assert config.ignore == ("BS105:encoder", "BS201")
    assert (config.fail_on, config.format) == ("warning", "sarif")
    assert (config.max_steps, config.max_time, config.sample_every) == (50, 60.0, 5)
    assert (config.overhead_budget, config.preflight_budget) == (0.1, 12.5)
    assert config.exclude == ("build/*",)
    assert config.thresholds == {
        "BS101": {"ratio_above": 2.0},
        "dead-relu": {"max_dead_fraction": 0.7},
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('fail-on = "loud"', "fail-on = 'loud' is invalid: expected one of error, warning"),
        ("max-steps = -1", "max-steps = -1 is invalid: expected an integer >= 0"),
        ('max-steps = "10"', "max-steps = '10' is invalid"),
        ("max-steps = 2.5", "max-steps = 2.5 is invalid"),
        ("sample-every = 0", "sample-every = 0 is invalid: expected an integer >= 1"),
        (
            "preflight-budget = 0",
            "preflight-budget = 0 is invalid: expected a number of seconds > 0",
        ),
        ("max-time = true", "max-time = True is invalid"),
        ("select = 3", "select = 3 is invalid: expected a list of check ids"),
        ('ignore = ["BS105", 4]', "ignore = ['BS105', 4] is invalid"),
        ('format = "pdf"', "format = 'pdf' is invalid: expected one of text, json, sarif"),
        ('select = ["BS8"]', "select: 'BS8' matches no check"),
        ('ignore = ["no-such-check:encoder"]', "ignore: 'no-such-check:encoder' matches no check"),
        ("max_steps = 10", "unknown key 'max_steps' in [tool.babysit] (did you mean 'max-steps'?"),
        ("colour = true", "unknown key 'colour' in [tool.babysit]"),
        ("thresholds = 3", "thresholds must be a table of tables"),
        (
            "[tool.babysit.thresholds.BS999]\nx = 1",
            "[tool.babysit.thresholds]: no check called 'BS999'",
        ),
        (
            "[tool.babysit.thresholds.dead-relu]\nmax_dead = 0.7",
            "check BS105 (dead-relu) has no threshold(s) ['max_dead']",
        ),
        (
            '[tool.babysit.thresholds.BS105]\nmax_dead_fraction = "high"',
            "threshold 'max_dead_fraction' of BS105 (dead-relu) must be a number",
        ),
    ],
)
def test_bad_values_name_the_file_and_the_key(tmp_path, body, expected):
    path = write(tmp_path / "pyproject.toml", "[tool.babysit]\n" + body + "\n")
    with pytest.raises(BabysitError) as error:
        load_config(tmp_path)
    assert str(path) in str(error.value)
    assert expected in str(error.value)


def test_invalid_toml_is_an_error_naming_the_file(tmp_path):
    path = write(tmp_path / "pyproject.toml", "[tool.babysit\nselect = [")
    with pytest.raises(BabysitError, match="is not valid TOML") as error:
        load_config(tmp_path)
    assert str(path) in str(error.value)


# -- precedence ---------------------------------------------------------------------------------


def test_merge_puts_given_flags_over_the_file():
    config = Config(select=("BS1",), ignore=("BS105:encoder",), fail_on="warning", max_steps=9)
    merged = config.merge(
        select=["BS2"], ignore=["BS201"], fail_on=FailOn.never, max_steps=None, max_time=None
    )
    assert merged.select == ("BS2",)  # replaces
    assert merged.ignore == ("BS105:encoder", "BS201")  # adds
    assert merged.fail_on == "never" and merged.max_steps == 9
    assert config.merge() == config
    with pytest.raises(TypeError):
        config.merge(colour=True)


def test_cli_flag_beats_file_beats_default(project):
    code, data, _ = report_json()
    assert code == 0 and data["summary"]["warning"] >= 2  # default fail-on: error
    write(project / "pyproject.toml", '[tool.babysit]\nfail-on = "warning"\n')
    assert report_json()[0] == 1
    assert report_json("--fail-on", "error")[0] == 0


def test_format_comes_from_the_file(project):
    write(project / "pyproject.toml", '[tool.babysit]\nformat = "junit"\n')
    result = runner.invoke(app, ["report", "trace.json"])
    assert result.stdout.startswith('<?xml version="1.0"')
    result = runner.invoke(app, ["report", "trace.json", "--format", "json"])
    assert json.loads(result.stdout)["schema"] == 1


def test_config_ignore_suppresses_a_runtime_finding_on_one_layer(project):
    write(project / "pyproject.toml", '[tool.babysit]\nignore = ["BS105:4"]\n')
    _, data, _ = report_json()
    assert "BS105" in {f["id"] for f in data["findings"]}  # a different layer: still reported
    write(project / "pyproject.toml", '[tool.babysit]\nignore = ["dead-relu:3"]\n')
    _, data, _ = report_json()
    ids = {f["id"] for f in data["findings"]}
    assert "BS105" not in ids and "BS201" in ids
    _, data, _ = report_json("--ignore", "BS201")  # the flag adds to the file's list
    assert not {"BS105", "BS201"} & {f["id"] for f in data["findings"]}


def test_config_select_and_thresholds_reach_the_checks(project):
    write(project / "pyproject.toml", '[tool.babysit]\nselect = ["BS2"]\n')
    _, data, _ = report_json()
    assert {f["id"] for f in data["findings"]} == {"BS201"}
    _, data, _ = report_json("--select", "BS1")  # the flag replaces the file's selection
    assert "BS201" not in {f["id"] for f in data["findings"]}
    write(
        project / "pyproject.toml",
        "[tool.babysit.thresholds.BS105]\nmin_samples_per_unit = 1000\n",
    )
    _, data, _ = report_json()
    assert "BS105" not in {f["id"] for f in data["findings"]}


def test_a_bad_config_exits_2_with_the_file_in_the_message(project):
    path = write(project / "pyproject.toml", '[tool.babysit]\nfail-on = "sometimes"\n')
    result = runner.invoke(app, ["report", "trace.json"])
    assert result.exit_code == 2
    assert result.stderr.startswith("babysit: error: ")
    assert str(path) in result.stderr and "fail-on" in result.stderr
    assert "Traceback" not in result.output


def test_audit_reads_the_config_next_to_the_script_and_flags_override_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project = tmp_path / "project"
    write(project / "pyproject.toml", "[tool.babysit]\nmax-steps = 2\n")
    script = write(
        project / "train.py",
        """
        import torch
        from torch import nn
        model = nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
        for _ in range(6):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        """,
    )
    result = runner.invoke(app, ["audit", str(script), "--no-preflight"])
    assert result.exit_code == 0, result.output
    assert "stopped by max_steps (2)" in result.output
    result = runner.invoke(app, ["audit", str(script), "--no-preflight", "--max-steps", "3"])
    assert "stopped by max_steps (3)" in result.output
