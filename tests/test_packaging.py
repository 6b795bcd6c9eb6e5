"""The built wheel ships the whole catalog as babysit.checks, and no top-level `checks`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from conftest import ROOT


def test_wheel_contains_the_whole_catalog(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("babysit", "checks"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    [wheel] = out.glob("babysit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    catalog = {p.name for p in (ROOT / "checks").glob("*.py")}
    shipped = {n.split("/")[-1] for n in names if n.startswith("babysit/checks/")}
    assert catalog <= shipped
    assert not any(n.startswith("checks/") for n in names)
    for sub in ("probes", "reporters", "experiments", "integrations"):
        assert f"babysit/{sub}/__init__.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "babysit = babysit.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
