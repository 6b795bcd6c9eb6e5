"""The self-contained HTML report (babysit.reporters.html) and `--html FILE`."""

from __future__ import annotations

import math
import re
import shutil
import struct
import subprocess
import textwrap
import zlib
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from conftest import blobs, init_all, mlp
from torch import nn
from typer.testing import CliRunner

import babysit
from babysit import Finding, Location, Report, Severity, Trace
from babysit.cli import app
from babysit.report import judge
from babysit.reporters import render

VOID = {"meta", "link", "br", "hr", "img", "input", "col", "area", "base", "wbr", "source"}
SVG_EMPTY = {"line", "polyline", "rect", "circle", "path"}
EVIL = "<script>alert('x')</script> & \"quotes\""


class Page(HTMLParser):
    """Collects elements and text, and fails on badly nested tags."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.stack: list[str] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()
        assert not self.stack, f"unclosed elements: {self.stack}"

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.elements
            if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())
        ]

    @property
    def plain(self) -> str:
        return " ".join("".join(self.text).split())


def points_of(polyline: dict[str, str]) -> list[tuple[float, float]]:
    return [tuple(map(float, pair.split(","))) for pair in polyline["points"].split()]


def assert_self_contained(text: str) -> None:
    assert "<script" not in text.lower()
    assert not re.search(r"https?://", text), "the page must load nothing from the network"
    assert not re.search(r"\b(src|href)\s*=", text)
    assert "@import" not in text and "url(" not in text


def synthetic_report(findings: list[Finding] | None = None, **trace_fields) -> Report:
    trace = Trace(mode="watch", target="Net")
    for key, value in trace_fields.items():
        setattr(trace, key, value)
    report = judge(trace)
    if findings is not None:
        report.findings = findings
    return report


def losses(n: int) -> list[dict]:
    return [{"step": i, "loss": 0.3 + 2.0 * math.exp(-i / 10)} for i in range(n)]


FINDINGS = [
    Finding(
        id="BS102",
        name="activation-variance-unstable",
        severity=Severity.ERROR,
        message="Activations shrink 1000x by layer fc3 " + EVIL,
        fix="Initialize with He init:\n\n```python\nnn.init.kaiming_normal_(m.weight)\n```\n",
        evidence={"relative_std": [1.0, 0.01, math.nan], "layer": "fc<3>"},
        location=Location(layer="fc<3>", file="train.py", line=12),
    ),
    Finding(
        id="BS501",
        name="regularization-without-effect",
        severity=Severity.INFO,
        message="The model has no regularization.",
        fix="Add weight decay.",
        evidence={"also_explains": ["dead-relu: half of fc1 is dead"]},
    ),
]


def test_page_is_valid_self_contained_and_escaped():
    report = synthetic_report(FINDINGS, steps=losses(20))
    text = render(report, "html")
    page = Page(text)
    assert_self_contained(text)
    assert text.startswith("<!DOCTYPE html>")
    assert page.all("title") and "babysit report: Net" in page.plain
    assert page.all("h1") and page.all("h2")
    for finding in FINDINGS:
        assert finding.id in page.plain and finding.name in page.plain
        assert finding.message in page.plain  # the text survives escaping unchanged
    assert EVIL not in text  # ... because it was escaped
    assert "at train.py:12, layer fc<3>" in page.plain
    assert "nn.init.kaiming_normal_(m.weight)" in page.plain and page.all("pre")
    assert "```" not in text
    assert "relative_std" in page.plain and "NaN" in page.plain
    assert "dead-relu: half of fc1 is dead" in page.plain
    assert page.all("article", class_="finding error", id="BS102")
    assert "1 error, 1 info" in page.plain


def test_every_svg_has_a_title_and_description():
    trace_fields = {
        "steps": losses(20),
        "gradients": [
            {
                "step": 0,
                "layers": {"fc": {"grad_norm": 1.0, "param_norm": 2.0, "update_norm": 1e-3}},
            }
        ],
    }
    page = Page(render(synthetic_report(**trace_fields), "html"))
    svgs = page.all("svg")
    assert len(svgs) == 3  # loss, gradient norm, update ratio
    for svg in svgs:
        assert svg["role"] == "img"
        title_id, desc_id = svg["aria-labelledby"].split()
        assert page.all("title", id=title_id) and page.all("desc", id=desc_id)


def test_loss_polylines_have_one_point_per_step_and_the_best_marker_sits_at_its_step():
    evals = [
        {"step": s, "epoch": e, "val_loss": v, "batches": 2, "source": "loss"}
        for s, e, v in [(10, 1, 1.2), (20, 2, 0.7), (30, 3, 0.9)]
    ]
    page = Page(render(synthetic_report(steps=losses(31), evals=evals), "html"))
    [train] = page.all("polyline", class_="train")
    [val] = page.all("polyline", class_="val")
    assert len(points_of(train)) == 31
    assert len(points_of(val)) == 3 and len(page.all("circle", class_="val-point")) == 3
    [best] = page.all("circle", class_="best")
    assert best["data-step"] == "20"
    # the marker is drawn where the validation line has its second point
    assert (float(best["cx"]), float(best["cy"])) == points_of(val)[1]
    assert "best validation loss 0.7 (step 20, epoch 2)" in page.plain
    xs = [x for x, _ in points_of(train)]
    assert xs == sorted(xs) and len(set(xs)) == 31


def test_long_runs_get_a_raw_and_a_smoothed_line():
    page = Page(render(synthetic_report(steps=losses(200)), "html"))
    [raw] = page.all("polyline", class_="train-raw")
    [smooth] = page.all("polyline", class_="train")
    assert len(points_of(raw)) == len(points_of(smooth)) == 200
    assert "training loss (EMA)" in page.plain


def test_diverged_run_shows_where_the_loss_became_nan():
    steps = losses(30)
    for entry in steps[18:]:
        entry["loss"] = math.nan
    text = render(synthetic_report(steps=steps), "html")
    page = Page(text)
    [train] = page.all("polyline", class_="train")
    assert len(points_of(train)) == 18
    assert len(page.all("line", class_="nonfinite")) == 1
    assert "loss became NaN/Inf at step 18" in page.plain
    assert "nan" not in " ".join(a.get("points", "") for _, a in page.elements).lower()


def test_single_step_and_empty_sections():
    page = Page(render(synthetic_report(steps=losses(1)), "html"))
    assert not page.all("polyline") and len(page.all("circle", class_="train-point")) == 1
    page = Page(render(synthetic_report(), "html"))
    assert not page.all("svg") and "Charts" not in page.plain
    assert "no findings" in page.plain


def test_check_report_has_findings_experiments_and_activation_chart_but_no_loss_curve():
    x, y = blobs()
    model = init_all(mlp(depth=8, width=128), std=0.01)
    report = babysit.check(model, x * 300 + 20, y, loss_fn=nn.CrossEntropyLoss())
    text = render(report, "html")
    page = Page(text)
    assert_self_contained(text)
    for finding in report.findings:
        assert finding.id in page.plain and finding.message in page.plain
    assert "Pre-flight experiments" in page.plain and "overfit" in page.plain
    assert [s["id"] for s in page.all("svg")] == ["activation_std-chart"]
    flagged = {f.location.layer for f in report.findings if f.location and f.location.layer}
    bars = {r["data-layer"] for r in page.all("rect") if "data-layer" in r}
    assert bars and flagged & bars
    assert not page.all("polyline")


def _watch_run() -> Report:
    torch.manual_seed(0)
    x, y = blobs(192)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with babysit.watch(model, opt, sample_every=2, overhead_budget=None) as sitter:
        for _ in range(3):
            model.train()
            for i in range(0, 128, 32):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[i : i + 32]), y[i : i + 32]).backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                nn.functional.cross_entropy(model(x[128:]), y[128:])
    return sitter.report


def test_real_watch_run():
    report = _watch_run()
    trace = report.trace
    page = Page(render(report, "html"))
    [train] = page.all("polyline", class_="train")
    # a step entry may hold only a validation pass (no training loss): it draws no point
    trained = [s for s in trace.steps if s.get("loss") is not None]
    assert len(points_of(train)) == len(trained) == 12
    assert page.all("line", class_="chance")
    if trace.evals:  # may be empty while the probe that fills it is being written
        assert len(page.all("circle", class_="val-point")) == len(trace.evals)
        best = min(trace.evals, key=lambda e: e["val_loss"])
        assert page.all("circle", class_="best")[0]["data-step"] == str(best["step"])
    if trace.gradients:
        layers = {name for entry in trace.gradients for name in entry["layers"]}
        bars = [r["data-layer"] for r in page.all("rect") if "data-layer" in r]
        assert set(bars) == layers


# -- the command line --------------------------------------------------------------------------
def test_report_and_audit_write_html_next_to_the_normal_output(tmp_path):
    report = _watch_run()
    trace_file = tmp_path / "trace.json"
    report.trace.save(trace_file)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", str(trace_file), "--html", str(out)])
    assert result.exit_code == report.exit_code(), result.output
    assert "babysit" in result.output  # the terminal report is still printed
    page = Page(out.read_text(encoding="utf-8"))
    assert page.all("polyline", class_="train")

    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn
            torch.manual_seed(0)
            model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
            for _ in range(6):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
            """
        )
    )
    audit_html = tmp_path / "audit.html"
    result = CliRunner().invoke(
        app, ["audit", str(script), "--preflight-budget", "5", "--html", str(audit_html)]
    )
    assert result.exit_code == 0, result.output
    page = Page(audit_html.read_text(encoding="utf-8"))
    assert len(points_of(page.all("polyline", class_="train")[0])) == 6


@pytest.mark.parametrize("where", ["missing-dir/r.html", "."])
def test_bad_html_path_is_a_usage_error(tmp_path, where):
    trace_file = tmp_path / "trace.json"
    Trace(mode="watch").save(trace_file)
    target = tmp_path / where
    result = CliRunner().invoke(app, ["report", str(trace_file), "--html", str(target)])
    assert result.exit_code == 2
    assert "babysit: error:" in result.output and str(target) in result.output
    script = tmp_path / "never_runs.py"
    script.write_text("raise SystemExit('must not run')\n")
    result = CliRunner().invoke(app, ["audit", str(script), "--html", str(target)])
    assert result.exit_code == 2 and "must not run" not in result.output


# -- a real browser ----------------------------------------------------------------------------
def _chromium() -> str | None:
    return next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
        None,
    )


def png_pixels(data: bytes) -> np.ndarray:
    """The (height, width, 3) pixels of an 8-bit RGB/RGBA PNG (enough for a screenshot)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, header = 8, b"", None
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    bpp = 3 if color == 2 else 4
    stride = width * bpp
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:]
        if kind == 0:
            row = line.copy()
        elif kind == 1:  # Sub: a running sum per channel
            row = line.reshape(width, bpp).cumsum(axis=0, dtype=np.uint8).reshape(stride)
        elif kind == 2:  # Up
            row = line + previous
        else:  # Average and Paeth depend on the byte just decoded: byte by byte
            row = bytearray(line.tobytes())
            up = previous.tolist()
            for i in range(stride):
                left = row[i - bpp] if i >= bpp else 0
                corner = up[i - bpp] if i >= bpp else 0
                if kind == 3:
                    row[i] = (row[i] + (left + up[i]) // 2) & 0xFF
                else:
                    p = left + up[i] - corner
                    pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - corner)
                    pred = left if pa <= pb and pa <= pc else (up[i] if pb <= pc else corner)
                    row[i] = (row[i] + pred) & 0xFF
            row = np.frombuffer(bytes(row), dtype=np.uint8)
        out[y] = row
        previous = out[y]
    return out.reshape(height, width, bpp)[:, :, :3]


def test_headless_chromium_renders_the_report(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    steps = losses(80)
    evals = [
        {"step": s, "epoch": s // 20, "val_loss": 0.5 + abs(s - 40) / 40, "batches": 2}
        for s in (20, 40, 60, 80)
    ]
    report = synthetic_report(FINDINGS, steps=steps, evals=evals)
    page_file = tmp_path / "report.html"
    page_file.write_text(render(report, "html"), encoding="utf-8")
    common = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [*common, "--dump-dom", page_file.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    for finding in FINDINGS:
        assert finding.id in dom.stdout
    assert dom.stdout.count("<svg") == 1 and 'class="train"' in dom.stdout
    assert "<script" not in dom.stdout.lower()

    shot = tmp_path / "out.png"
    result = subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1200,2000", page_file.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    pixels = png_pixels(shot.read_bytes()).astype(int)
    assert pixels.shape == (2000, 1200, 3)
    colors = {tuple(p) for p in pixels[::2, ::2].reshape(-1, 3)}
    assert len(colors) > 50, "the page rendered (nearly) blank"
    # the charts are drawn in their own colours, not only grey text on white
    assert (np.abs(pixels[:, :, 0] - pixels[:, :, 2]) > 60).sum() > 500
    # and something is drawn in most of the page's upper half
    busy_rows = (pixels[:1000].std(axis=(1, 2)) > 1).sum()
    assert busy_rows > 300
