"""How fast is `babysit lint`? Lints a generated tree of ~10,000 lines of training scripts.

The tree is built in a temporary directory from the clean scripts of ``tests/lint_corpus/`` and
``examples/``, each copy renamed and given a little private text so that no two files are
identical, spread over nested packages. ``babysit lint TREE --format json`` then runs in this
process (typer's CliRunner) several times; the parse/analysis caches are emptied before each
cold run, so every run parses and analyzes every file. A warm run (the same texts again, as
``babysit report`` re-judging a saved lint trace does) is timed too.

Usage: python benchmarks/lint.py [--lines 10000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from typer.testing import CliRunner  # noqa: E402

from babysit.cli import app  # noqa: E402


def build_tree(root: Path, lines: int) -> tuple[int, int]:
    templates = sorted((ROOT / "tests" / "lint_corpus").glob("*.py"))
    templates += sorted((ROOT / "examples").glob("*.py"))
    texts = [t.read_text(encoding="utf-8") for t in templates]
    written = files = 0
    while written < lines:
        text = texts[files % len(texts)]
        package = root / f"pkg{files % 7}" / f"sub{files % 3}"
        package.mkdir(parents=True, exist_ok=True)
        body = f"# generated copy {files}\nRUN_ID = {files}\n" + text
        (package / f"train_{files:04d}.py").write_text(body, encoding="utf-8")
        written += body.count("\n") + 1
        files += 1
    return files, written


def clear_caches() -> None:
    from babysit.lint import analysis, parse, suppressions

    parse._TREES.clear()
    analysis._ANALYSES.clear()
    suppressions.directives.cache_clear()


def lint_once(tree: Path) -> tuple[float, dict]:
    runner = CliRunner()
    start = time.perf_counter()
    result = runner.invoke(app, ["lint", str(tree), "--format", "json"])
    seconds = time.perf_counter() - start
    if result.exit_code not in (0, 1):
        raise SystemExit(f"babysit lint failed ({result.exit_code}): {result.output}")
    return seconds, json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp)
        files, lines = build_tree(tree, args.lines)
        lint_once(tree)  # imports, registry discovery: not part of the per-run cost
        cold = []
        for _ in range(args.repeats):
            clear_caches()
            seconds, report = lint_once(tree)
            cold.append(seconds)
        warm = [lint_once(tree)[0] for _ in range(args.repeats)]
    loud = sum(report["summary"][k] for k in ("error", "warning"))
    median = statistics.median(cold)
    print(f"babysit lint on {files} files, {lines} lines ({args.repeats} runs, in-process)")
    print(
        f"  cold (parse + analyze + judge + JSON): median {median:.3f} s "
        f"(min {min(cold):.3f}, max {max(cold):.3f}) = {lines / median:,.0f} lines/s, "
        f"{median / lines * 1000 * 1000:.1f} ms per 1,000 lines"
    )
    print(f"  warm (cached analyses):                median {statistics.median(warm):.3f} s")
    print(f"  findings: {report['summary']} ({loud} at warning or above; the scripts are clean)")
    print(
        f"  target: well under 1 s per 1,000 lines: {'met' if median / lines < 1e-3 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
