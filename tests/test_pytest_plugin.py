"""The pytest plugin (babysit/pytest_plugin.py), run inside pytester sessions."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import entry_points

import pytest

pytest_plugins = ["pytester"]

CONFTEST = textwrap.dedent(
    """
    import torch
    from torch import nn

    torch.set_num_threads(1)

    def make(bug=None):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
        if bug == "zero-init":
            for layer in (model[0], model[2]):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
        g = torch.Generator().manual_seed(0)
        y = torch.randint(0, 3, (32,), generator=g)
        x = torch.randn(3, 8, generator=g)[y] + 0.3 * torch.randn(32, 8, generator=g)
        return model, (x, y), nn.CrossEntropyLoss()
    """
)

TESTS = textwrap.dedent(
    """
    import pytest
    from conftest import make

    def test_clean(babysit):
        model, (x, y), loss_fn = make()
        babysit.assert_trainable(model, x, y, loss_fn, budget=5)

    def test_zero_init(babysit):
        model, (x, y), loss_fn = make("zero-init")
        babysit.assert_trainable(model, x, y, loss_fn, budget=5)  # the user's line
    """
)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    # runpytest runs in this process and drops the modules each inner session imported.
    # torch's first optimizer imports Dynamo and Inductor, whose operator library may be
    # registered once per process, so they must be imported out here, before any inner run.
    import torch

    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    pytester.makeconftest(CONFTEST)
    return pytester


def test_the_entry_point_registers_the_plugin():
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("babysit") == "babysit.pytest_plugin"


def test_importing_the_plugin_imports_neither_torch_nor_the_api():
    code = (
        "import sys, babysit.pytest_plugin\n"
        "heavy = [m for m in ('torch', 'babysit.api', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_trainable_model_passes_and_a_broken_one_fails_with_the_report(project):
    project.makepyfile(test_models=TESTS)
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str()
    # the failure reads like the report: finding, evidence, fix
    result.stdout.fnmatch_lines(
        [
            "*babysit found 1 problem(s) at or above fail_on='error'*",
            "*error BS104 symmetric-init: The 16 units of `0` start identical*",
            "*weight_std: 0*",
            "*fix: Initialize the weights randomly*",
        ]
    )
    # pytest points at the user's line, not at babysit's internals
    assert "babysit.assert_trainable(model, x, y, loss_fn, budget=5)  # the user's line" in output
    assert "babysit/testing.py" not in output and "pytest_plugin.py" not in output
    # the summary section lists every report the fixture produced
    result.stdout.fnmatch_lines(
        [
            "*= babysit =*",
            "test_models.py::test_clean: Sequential: 1 info: info BS501 regularization-*",
            "test_models.py::test_zero_init: Sequential: 1 error*: error BS104 symmetric-init*",
        ]
    )


def test_fail_on_comes_from_the_command_line_or_the_ini_file(project):
    project.makepyfile(
        test_clean="""
        from conftest import make

        def test_clean(babysit):
            model, (x, y), loss_fn = make()
            babysit.assert_trainable(model, x, y, loss_fn, budget=5)
        """
    )
    # the clean model has one info note (no regularization): it fails only at fail_on=info
    project.runpytest().assert_outcomes(passed=1)
    strict = project.runpytest("--babysit-fail-on=info")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["babysit: fail_on=info", "*regularization-without-effect*"])
    project.makeini("[pytest]\nbabysit_fail_on = info\n")
    project.runpytest().assert_outcomes(failed=1)
    assert project.runpytest("--babysit-fail-on=error").ret == 0  # the command line wins


def test_a_bad_ini_value_is_a_usage_error(project):
    project.makeini("[pytest]\nbabysit_fail_on = sometimes\n")
    project.makepyfile(test_x="def test_x():\n    pass\n")
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*babysit_fail_on = 'sometimes': choose one of error*"])


def test_the_marker_sets_the_fixture_defaults_and_passes_strict_markers(project):
    project.makepyfile(
        test_marked="""
        import pytest
        from conftest import make

        pytestmark = pytest.mark.babysit(budget=5)

        @pytest.mark.babysit(fail_on="never")
        def test_reported_not_failed(babysit):
            model, (x, y), loss_fn = make("zero-init")
            report = babysit.assert_trainable(model, x, y, loss_fn)
            assert not report.ok

        @pytest.mark.babysit(select=["BS101"])
        def test_selected(babysit):
            model, (x, y), loss_fn = make()
            report = babysit.check(model, x, y, loss_fn)
            assert report.checks_run == ["loss-at-init-not-chance"]

        @pytest.mark.babysit(ignore=["symmetric-init", "BS4", "BS1"])
        def test_ignored(babysit):
            model, (x, y), loss_fn = make("zero-init")
            babysit.assert_trainable(model, x, y, loss_fn)

        @pytest.mark.babysit(fail_on="never")
        def test_call_argument_wins(babysit):
            model, (x, y), loss_fn = make("zero-init")
            babysit.assert_trainable(model, x, y, loss_fn, fail_on="error")

        @pytest.mark.babysit(patience=3)
        def test_unknown_option(babysit):
            pass
        """
    )
    result = project.runpytest("--strict-markers")
    result.assert_outcomes(passed=3, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.babysit takes keyword arguments fail_on, select*; got ?'patience'?",
        ]
    )
    # The short summary's message spans as many lines as the report has, so
    # match the FAILED line itself rather than a position near the end.
    result.stdout.fnmatch_lines(["FAILED test_marked.py::test_call_argument_wins*"])


def test_the_finer_assertions_through_the_fixture(project):
    project.makepyfile(
        test_finer="""
        from conftest import make

        def test_loss_at_chance(babysit):
            model, (x, y), loss_fn = make()
            report = babysit.assert_loss_at_chance(model, x, y, loss_fn)
            assert report.checks_run == ["loss-at-init-not-chance"]

        def test_gradients_flow(babysit):
            model, (x, y), loss_fn = make("zero-init")
            babysit.assert_gradients_flow(model, x, y, loss_fn, budget=5)

        def test_can_overfit(babysit):
            model, (x, y), loss_fn = make("zero-init")
            babysit.assert_can_overfit(model, x, y, loss_fn, budget=5)
        """
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_gradients_flow _*",
            "*error BS104 symmetric-init*",
            "*_ test_can_overfit _*",
            "*error BS104 symmetric-init*",
        ]
    )


def test_reports_reach_junit_xml_as_properties(project):
    project.makepyfile(test_models=TESTS)
    project.runpytest("--junitxml=out.xml")
    xml = (project.path / "out.xml").read_text()
    assert '<property name="babysit" value="Sequential: 1 info: info BS501' in xml
    assert '<property name="babysit" value="Sequential: 1 error, 1 info: error BS104' in xml


def test_the_plugin_is_inert_when_unused(pytester: pytest.Pytester):
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    # pytest's own "plugins: babysit-X" line aside, the plugin adds nothing to the output
    assert not [line for line in result.outlines if "babysit" in line and "plugins:" not in line]
    markers = pytester.runpytest("--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.babysit(fail_on=, select=, ignore=*"])
