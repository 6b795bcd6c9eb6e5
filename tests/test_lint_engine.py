"""The static-analysis engine: imports, reaching assignments, caching, file collection,
suppressions, and the trace/finding plumbing for static findings."""

from __future__ import annotations

import ast
import json
import textwrap

from babysit.check import Finding, Location, Severity
from babysit.lint import analyze, collect_files, lint_trace
from babysit.lint.analysis import Analysis
from babysit.lint.parse import ParseError
from babysit.lint.suppressions import directives
from babysit.trace import Trace


def analysis(source: str) -> Analysis:
    result = analyze("snippet.py", textwrap.dedent(source))
    assert isinstance(result, Analysis)
    return result


def call_named(a: Analysis, text: str) -> ast.Call:
    return next(c for c in a.calls if ast.unparse(c) == text)


def test_import_aliases_resolve_to_qualified_names():
    a = analysis(
        """
        import torch.nn.functional as F
        import torch.nn as nn2
        from torch import nn
        from torch.nn import CrossEntropyLoss as CE
        import torch
        F.softmax(x); nn.Linear(1, 1); nn2.ReLU(); CE(); torch.optim.Adam(p); other.softmax(x)
        """
    )
    names = {ast.unparse(c.func): a.qualname(c.func) for c in a.calls}
    assert names == {
        "F.softmax": "torch.nn.functional.softmax",
        "nn.Linear": "torch.nn.Linear",
        "nn2.ReLU": "torch.nn.ReLU",
        "CE": "torch.nn.CrossEntropyLoss",
        "torch.optim.Adam": "torch.optim.Adam",
        "other.softmax": None,
    }


def test_reaching_assignments_follow_dominating_definitions_only():
    a = analysis(
        """
        def f(flag, logits):
            out = logits.softmax(1)
            use(out)
            out = logits
            use(out)
            if flag:
                out = logits.sigmoid()
            use(out)
        """
    )
    uses = [c.args[0] for c in a.calls if ast.unparse(c.func) == "use"]
    kinds = [a.activation(u) for u in uses]
    assert kinds[0] is not None and kinds[0][0] == "softmax"
    assert kinds[1] is None  # a parameter: unknown
    assert kinds[2] is None  # sigmoid on one path only


def test_self_attributes_resolve_through_the_class():
    a = analysis(
        """
        import torch.nn as nn
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.out = nn.Sigmoid()
            def forward(self, x):
                return self.out(x)
        m = M()
        y = m(1)
        """
    )
    assert a.module_output(call_named(a, "m(1)").func, a.ctx(call_named(a, "m(1)"))) == "sigmoid"
    assert a.is_model_call(call_named(a, "m(1)"))


def test_optimizers_models_and_no_grad_are_recognized():
    a = analysis(
        """
        import torch
        from torch import optim
        opt = optim.SGD(params, lr=0.1)
        g_optimizer = make()
        opt.step(); g_optimizer.step(); scheduler.step()
        with torch.no_grad():
            model(x)
        @torch.inference_mode()
        def f():
            net(x)
        """
    )
    stepped = [ast.unparse(c.func) for c in a.calls if a.stepped_optimizer(c) is not None]
    assert stepped == ["opt.step", "g_optimizer.step"]
    assert a.in_no_grad(call_named(a, "model(x)")) and a.in_no_grad(call_named(a, "net(x)"))
    assert a.is_model_call(call_named(a, "model(x)"))


def test_parse_and_analysis_are_cached_by_text():
    text = "import torch\nx = 1\n"
    assert analyze("a.py", text) is analyze("a.py", text)
    assert analyze("a.py", text) is not analyze("a.py", text + "\n")
    broken = analyze("b.py", "def f(:\n")
    assert isinstance(broken, ParseError) and broken.line == 1


def test_collect_files_recurses_skips_build_dirs_and_excludes(tmp_path):
    for rel in (
        "a.py",
        "pkg/b.py",
        "pkg/notes.txt",
        ".venv/lib/c.py",
        "build/d.py",
        "node_modules/e.py",
        "pkg/__pycache__/f.py",
        "gen/g.py",
        "x.egg-info/h.py",
    ):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n")
    found = collect_files([tmp_path], exclude=["gen"])
    names = sorted(p.replace(str(tmp_path), "").replace("\\", "/") for p in found)
    assert names == ["/a.py", "/pkg/b.py"]
    assert collect_files([tmp_path / "gen" / "g.py"], exclude=["gen"])  # named files are linted


def test_suppression_directives_are_read_from_comments():
    text = (
        "a = 1  # babysit: ignore[BS901, missing-zero-grad]\n"
        'b = "# babysit: ignore"\n'
        "c = 3  # babysit:ignore\n"
    )
    assert directives(text) == {1: frozenset({"bs901", "missing-zero-grad"}), 3: None}


def test_location_column_round_trips_and_prints():
    location = Location(file="train.py", line=3, column=7)
    assert str(location) == "train.py:3:7"
    finding = Finding("BS903", "missing-zero-grad", Severity.ERROR, "m", "f", {}, location)
    assert Finding.from_dict(json.loads(json.dumps(finding.to_dict()))) == finding
    assert str(Location(file="t.py", line=3)) == "t.py:3"


def test_trace_sources_round_trip_and_old_traces_load(tmp_path):
    trace = lint_trace([__file__])
    assert trace.sources[0]["text"].startswith('"""The static-analysis engine')
    again = Trace.from_json(trace.to_json())
    assert again.sources == trace.sources and again.mode == "lint"
    old = json.loads(Trace().to_json())
    del old["sources"]
    assert Trace.from_dict(old).sources == []


def test_an_if_else_that_assigns_on_every_path_dominates_the_use():
    a = analysis(
        """
        def f(flag, other, logits):
            if flag:
                probs = logits.softmax(1)
            elif other:
                probs = torch.softmax(logits, 1)
            else:
                if other:
                    probs = F.softmax(logits, 1)
                else:
                    probs = logits.softmax(-1)
            use(probs)
            if flag:
                maybe = logits.softmax(1)
            elif other:
                maybe = logits.softmax(1)
            use(maybe)
            for _ in range(3):
                if flag:
                    looped = logits.softmax(1)
                else:
                    looped = logits.softmax(1)
            use(looped)
        """
    )
    uses = [c.args[0] for c in a.calls if ast.unparse(c.func) == "use"]
    origins = [a.origins(u) for u in uses]
    assert origins[0] is not None and len(origins[0]) == 4  # every branch assigns
    assert origins[1] is None  # no else: the parameter-less path is unknown
    assert origins[2] is None  # the loop may not run


def test_a_tree_larger_than_the_cache_is_judged_in_chunks_with_the_same_findings(
    monkeypatch, tmp_path
):
    from babysit import report
    from babysit.lint import analysis as analysis_module
    from babysit.lint import parse as parse_module

    buggy = textwrap.dedent(
        """
        import torch.nn.functional as F

        def train(model, loader, opt):
            for x, y in loader:
                loss = F.cross_entropy(F.softmax(model(x), dim=1), y)
                loss.backward()
                opt.step()
        """
    )
    count = parse_module.CACHE_SIZE + report.SOURCE_CHUNK + 7  # not a multiple of the chunk
    sources = [{"path": f"pkg/m{i}.py", "text": f"# module {i}\n{buggy}"} for i in range(count)]
    trace = Trace(mode="lint", target="tree", sources=sources)
    built = []
    original = analysis_module._analysis

    def counting(path, text, tree):
        built.append(path)
        return original(path, text, tree)

    monkeypatch.setattr(analysis_module, "_analysis", counting)
    analysis_module._ANALYSES.clear()
    found = report.judge(trace)
    # file-major: each file is analyzed once for all the rules, although the cache cannot
    # hold the tree (rule by rule, every rule would analyze every file again)
    assert sorted(built) == sorted(s["path"] for s in sources)
    per_file = {(f.name, f.location.file) for f in found.findings}
    # every file has both bugs, each reported once
    assert per_file == {
        (name, f"pkg/m{i}.py")
        for i in range(count)
        for name in ("softmax-before-cross-entropy", "missing-zero-grad")
    }
    assert len(found.findings) == 2 * count
    # after the files were read (and analyzed for their notes) as `babysit lint` does, the
    # judge analyzes each evicted file once more, never a third time
    from babysit.lint import read_sources

    paths = []
    for source in sources:
        path = tmp_path / source["path"]
        path.parent.mkdir(exist_ok=True)
        path.write_text(source["text"])
        paths.append(str(path))
    built.clear()
    analysis_module._ANALYSES.clear()
    parse_module._TREES.clear()
    read = read_sources(paths)
    assert len(read.sources) == count and len(built) == count
    again = report.judge(Trace(mode="lint", target="tree", sources=read.sources))
    assert len(again.findings) == 2 * count
    assert len(built) <= 2 * count and max(built.count(p) for p in set(built)) == 2
    # one file alone is judged the same way
    alone = report.judge(Trace(mode="lint", target="one", sources=sources[:1]))
    assert {(f.name, f.location.line) for f in alone.findings} == {
        (f.name, f.location.line) for f in found.findings if f.location.file == "pkg/m0.py"
    }


def test_a_rule_that_crashes_on_a_large_tree_is_reported_once(monkeypatch):
    from babysit import registry, report

    def crash(self, trace, thresholds):
        raise RuntimeError("boom")

    monkeypatch.setattr(registry.get("missing-zero-grad"), "run", crash)
    sources = [
        {"path": f"m{i}.py", "text": f"x = {i}\n"} for i in range(2 * report.SOURCE_CHUNK + 1)
    ]
    found = report.judge(Trace(mode="lint", target="tree", sources=sources))
    assert [e["probe"] for e in found.trace.errors] == ["check BS903"]  # once, not per chunk
    assert [f.id for f in found.findings] == ["BS000"]  # BS000 ran after the chunked rules


def test_form_feeds_do_not_shift_line_numbers():
    from babysit.lint.parse import source_lines

    text = "import torch\n\x0c\nx = 1\r\ny = 'é'\rz = 2\n"
    assert source_lines(text)[2:5] == ["x = 1", "y = 'é'", "z = 2"]
    a = analyze("ff.py", "import torch.nn.functional as F\n\x0c\ns = 'é'; F.softmax(z, 1)\n")
    call = next(c for c in a.calls if ast.unparse(c.func) == "F.softmax")
    assert a.location(call) == (3, 10)  # characters, counted on the right line (bytes: 11)
