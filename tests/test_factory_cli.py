"""`babysit check MODULE:FACTORY` and the factory loading behind it (babysit/factory.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import torch
from conftest import EXAMPLES, ROOT
from torch import nn
from typer.testing import CliRunner

from babysit import registry
from babysit.cli import app
from babysit.errors import BabysitError
from babysit.factory import FactoryFailed, Problem, load, validate

runner = CliRunner()
GOOD = f"{EXAMPLES / 'factories.py'}:make_model"
BROKEN = f"{EXAMPLES / 'factories.py'}:make_broken_model"

MODELS = textwrap.dedent(
    """
    import torch
    from torch import nn

    def batch():
        return torch.randn(32, 6), torch.randint(0, 3, (32,))

    def as_tuple():
        return nn.Linear(6, 3), batch(), nn.CrossEntropyLoss()

    def with_optimizer():
        model = nn.Linear(6, 3)
        return model, batch(), nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), 0.1)

    def as_dict():
        x, y = batch()
        return {"model": nn.Linear(6, 3), "inputs": x, "targets": y,
                "loss_fn": nn.functional.cross_entropy}

    def as_dict_with_batch():
        return {"model": nn.Linear(6, 3), "batch": batch(), "loss_fn": nn.CrossEntropyLoss()}

    def _load_data():
        raise FileNotFoundError("data/train.csv")

    def raises():
        return _load_data()

    def needs_argument(width):
        return nn.Linear(6, width), batch(), nn.CrossEntropyLoss()

    def foreign_optimizer():
        other = nn.Linear(6, 3)
        return nn.Linear(6, 3), batch(), nn.CrossEntropyLoss(), torch.optim.SGD(other.parameters())

    def random_model():
        return nn.Linear(6, 3), batch(), nn.CrossEntropyLoss()

    NOT_A_FUNCTION = 3
    """
)


@pytest.fixture
def models(tmp_path, monkeypatch):
    path = tmp_path / "mymodels.py"
    path.write_text(MODELS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "mymodels", raising=False)
    yield path
    sys.modules.pop("mymodels", None)


# -- babysit.factory, without the CLI ---------------------------------------------------------


@pytest.mark.parametrize("factory", ["as_tuple", "with_optimizer", "as_dict", "as_dict_with_batch"])
def test_each_accepted_return_shape_loads_from_a_file_path(models, factory):
    problem = load(f"{models}:{factory}")
    assert isinstance(problem, Problem)
    assert isinstance(problem.model, nn.Linear)
    assert problem.inputs.shape == (32, 6)
    assert problem.targets.shape == (32,)
    assert callable(problem.loss_fn)
    assert (problem.optimizer is not None) == (factory == "with_optimizer")


def test_a_dotted_module_name_is_found_from_the_current_directory(models):
    problem = load("mymodels:as_tuple")
    assert isinstance(problem.model, nn.Linear)


def test_the_seed_makes_random_inits_reproducible(models):
    first = load(f"{models}:random_model", seed=3).model.weight
    second = load(f"{models}:random_model", seed=3).model.weight
    third = load(f"{models}:random_model", seed=4).model.weight
    assert torch.equal(first, second)
    assert not torch.equal(first, third)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon_here", "expected MODULE:FACTORY"),
        ("does_not_exist_anywhere:make", "no module named 'does_not_exist_anywhere'"),
        ("missing/file.py:make", "no such file"),
        ("mymodels:nope", "has no attribute 'nope'; functions defined there: batch, as_tuple"),
        ("mymodels:NOT_A_FUNCTION", "is an int, not a function"),
        ("mymodels:needs_argument", "needs argument(s) width"),
    ],
)
def test_bad_specs_say_what_is_wrong(models, spec, message):
    with pytest.raises(BabysitError) as info:
        load(spec)
    assert not isinstance(info.value, FactoryFailed)
    assert message in str(info.value)


def test_a_raising_factory_keeps_only_the_users_frames(models):
    with pytest.raises(FactoryFailed) as info:
        load(f"{models}:raises")
    assert "raises raised FileNotFoundError: data/train.csv" in str(info.value)
    trace = info.value.traceback
    assert trace.startswith("Traceback (most recent call last):")
    assert 'mymodels.py", line' in trace and "in _load_data" in trace
    assert "babysit" not in trace.replace(str(models.parent), "")
    assert "importlib" not in trace


def test_errors_while_importing_the_module_are_the_users_not_a_missing_module(tmp_path):
    (tmp_path / "needs_dep.py").write_text("import not_a_real_dependency_xyz\n")
    (tmp_path / "broken_syntax.py").write_text("def make(:\n")
    with pytest.raises(FactoryFailed) as missing_dep:
        load(f"{tmp_path / 'needs_dep.py'}:make")
    assert "No module named 'not_a_real_dependency_xyz'" in str(missing_dep.value)
    assert 'needs_dep.py", line 1' in missing_dep.value.traceback
    with pytest.raises(FactoryFailed) as syntax:
        load(f"{tmp_path / 'broken_syntax.py'}:make")
    assert "SyntaxError" in syntax.value.traceback


X, Y = torch.randn(8, 4), torch.randint(0, 2, (8,))
MODEL = nn.Linear(4, 2)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (MODEL, "returned a Linear"),
        ((MODEL, (X, Y)), "returned a tuple of 2 item(s)"),
        ((MODEL, X, nn.CrossEntropyLoss()), "must be the batch (inputs, targets), got a Tensor"),
        ((MODEL, (X, Y, Y), nn.CrossEntropyLoss()), "got a tuple of 3 item(s)"),
        (("model", (X, Y), nn.CrossEntropyLoss()), "is a str, not a torch.nn.Module"),
        ((MODEL, (X, Y), torch.tensor(0.3)), "not a loss value"),
        ((MODEL, (X, Y), nn.CrossEntropyLoss(), "adam"), "not a torch.optim.Optimizer"),
        ({"model": MODEL, "x": X}, "unknown key(s) ['x']"),
        ({"inputs": X, "targets": Y}, "without 'model'"),
        ({"model": MODEL, "targets": Y}, "without 'inputs' (or 'batch')"),
        ({"model": MODEL, "batch": (X, Y), "inputs": X}, "both 'batch' and 'inputs'"),
    ],
)
def test_wrong_return_values_explain_the_expected_shape(value, message):
    with pytest.raises(BabysitError) as info:
        validate(value, "f")
    assert message in str(info.value)


def test_the_shape_errors_show_an_example_to_copy():
    with pytest.raises(BabysitError) as info:
        validate(MODEL, "f")
    assert "return model, (inputs, targets), loss_fn, optimizer" in str(info.value)
    assert "def make_model():" in str(info.value)


# -- the CLI ----------------------------------------------------------------------------------


def test_the_good_example_factory_passes_and_the_broken_one_fails():
    good = runner.invoke(app, ["check", GOOD])
    assert good.exit_code == 0, good.output
    assert "no findings" in good.stdout
    broken = runner.invoke(app, ["check", BROKEN])
    assert broken.exit_code == 1, broken.output
    assert "cannot-overfit-tiny-batch" in broken.stdout
    assert "Softmax" in broken.stdout  # the fix names the cause


def test_fail_on_and_no_experiments_change_the_verdict():
    never = runner.invoke(app, ["check", BROKEN, "--fail-on", "never"])
    assert never.exit_code == 0
    assert "cannot-overfit-tiny-batch" in never.stdout
    quick = runner.invoke(app, ["check", BROKEN, "--no-experiments", "--format", "json"])
    assert quick.exit_code == 0, quick.output
    report = json.loads(quick.stdout)
    assert report["findings"] == []
    assert "cannot-overfit-tiny-batch" in report["checks"]["skipped"]


def test_json_report_to_a_file_and_selection(tmp_path):
    out = tmp_path / "report.json"
    result = runner.invoke(
        app, ["check", BROKEN, "--format", "json", "-o", str(out), "--select", "BS4"]
    )
    assert result.exit_code == 1
    report = json.loads(out.read_text())
    assert [f["name"] for f in report["findings"]] == ["cannot-overfit-tiny-batch"]
    assert report["checks"]["run"]
    assert all(registry.get(name).id.startswith("BS4") for name in report["checks"]["run"])
    ignored = runner.invoke(app, ["check", BROKEN, "--ignore", "cannot-overfit-tiny-batch"])
    assert ignored.exit_code == 0, ignored.output


def test_a_raising_factory_exits_4_with_the_users_traceback(models):
    result = runner.invoke(app, ["check", "mymodels:raises"])
    assert result.exit_code == 4
    assert "mymodels:raises raised FileNotFoundError" in result.stderr
    assert "in _load_data" in result.stderr
    assert "babysit/factory.py" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mymodels:nope"], "has no attribute 'nope'"),
        (["nowhere_module_xyz:make"], "no module named"),
        (["mymodels:foreign_optimizer"], "does not hold any parameter of the model"),
        (["mymodels:as_tuple", "--budget", "0"], "--budget must be > 0"),
        (["mymodels:as_tuple", "--select", "BS999"], "matches no check"),
    ],
)
def test_usage_errors_exit_2(models, args, message):
    result = runner.invoke(app, ["check", *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("babysit: error: ")
    assert message in result.stderr


def test_selectors_are_validated_before_the_users_module_is_imported(tmp_path, monkeypatch):
    (tmp_path / "loud.py").write_text("raise SystemExit('imported!')\n")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["check", "loud.py:make", "--ignore", "nonsense"])
    assert result.exit_code == 2
    assert "imported!" not in result.output


def test_ci_annotations_point_at_the_factory_file(monkeypatch):
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    assert load(BROKEN).source == str(EXAMPLES / "factories.py")
    result = runner.invoke(app, ["check", BROKEN, "--format", "sarif"])
    assert result.exit_code == 1
    (finding,) = json.loads(result.stdout)["runs"][0]["results"]
    assert finding["ruleId"] == "BS401"
    location = finding["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location["uri"] == "examples/factories.py"


# -- the pre-commit hook ----------------------------------------------------------------------


def test_the_pre_commit_hook_runs_a_real_babysit_command(tmp_path):
    import yaml  # pyyaml, in the dev extra

    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (hook,) = [h for h in hooks if h["id"] == "babysit-lint"]
    assert {"id", "name", "entry", "language"} <= set(hook)
    assert hook["language"] == "python"
    assert hook["types"] == ["python"]
    assert hook["require_serial"] is False
    # the entry is the console script from pyproject plus an existing command of the app
    program, command = hook["entry"].split()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[program] == "babysit.cli:main"
    assert command in {c.name or c.callback.__name__ for c in app.registered_commands}
    # pre-commit appends the staged file names
    clean = tmp_path / "clean.py"
    clean.write_text("x = 1\n")
    executable = Path(sys.executable).parent / program
    proc = subprocess.run(
        [str(executable), command, str(clean)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
