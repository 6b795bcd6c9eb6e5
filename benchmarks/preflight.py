"""Cost of ``babysit.check()``'s pre-flight protocol, in training steps of the same model.

``babysit.check(model, x, y, loss_fn=..., optimizer=...)`` runs, after the passive checks' one
forward pass, a protocol of experiments on deep copies of the model (one backward pass and
optimizer step, overfitting a tiny batch with regularization off and on, batch mixing,
verified fixes). This script measures what that protocol costs, as a multiple of ONE training
step of the same model (zero_grad, forward, loss, backward, optimizer step on the full batch
of 64): "step-equivalents" = protocol seconds / step seconds.

Workloads (``--models``, default all three):

  mlp       the MLP of examples/mlp_classifier.py (20 -> 128 -> 128 -> 128 -> 10, ReLU),
            AdamW lr 1e-3, standardized synthetic tabular data from that example
  cnn       the SmallCNN of examples/cnn_classifier.py (Conv-BN-ReLU-MaxPool x3, 16/32/64
            channels, 3x16x16 images, 4 classes), AdamW lr 1e-3, its normalized bar images
  resnet18  a standard ResNet-18 (BasicBlock, [2, 2, 2, 2], 64-128-256-512 channels, ~11.2M
            parameters, torchvision's layout and init) with a CIFAR stem (3x3 conv, no
            max-pool), 3x32x32 inputs, 10 classes, SGD lr 0.1 momentum 0.9 weight decay 5e-4

Every repeat builds fresh models and optimizers from the same seed and runs three units, in an
order rotated every repeat: a training-step run (untimed warm-up steps, then timed steps), a
``check()`` with the protocol (``experiments=True``, the default) and a ``check()`` without it
(``experiments=False``). A first, untimed round per workload pays for first calls (lazy
imports, oneDNN kernels for new shapes); its numbers are reported as "first call". Medians are
over the timed repeats. The protocol's time is babysit's own record,
``report.trace.experiments["protocol"]["seconds"]``; the whole ``check()`` call is timed too.

The issue's target: the default protocol costs at most 200 step-equivalents and at most 30 s
on CPU for the ResNet-18 case.

PyTorch runs single-threaded (``torch.set_num_threads(1)``, change with ``--threads``) so that
the numbers are stable on a shared machine.

    python benchmarks/preflight.py              # full run, about 1.5-2 minutes on 2 cores
    python benchmarks/preflight.py --quick      # smoke run, about 35 s
    python benchmarks/preflight.py --json out.json
"""

from __future__ import annotations

import os

# One intra-op thread unless the caller says otherwise; must be set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import functools
import gc
import importlib.util
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from _machine import cpu_name, source_digest
from torch import nn

import babysit

REPO = Path(__file__).resolve().parent.parent
BATCH = 64
#: The issue's targets, stated for the ResNet-18 workload.
TARGET_WORKLOAD = "resnet18"
TARGET_STEP_EQUIVALENTS = 200.0
TARGET_SECONDS = 30.0
EXPERIMENTS = ("gradients", "overfit", "regularization", "batch_mixing", "verified_fixes")
UNITS = ("step", "check", "passive")


# -- the examples' models and data -------------------------------------------------------------
@functools.cache
def load_example(name: str) -> ModuleType:
    """Import examples/<name>.py (a script, not a package) without running its main()."""
    path = REPO / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_babysit_example_{name}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def mlp_data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The example's tabular data, standardized with the statistics of a 4096-sample split."""
    example = load_example("mlp_classifier")
    x, y = example.make_tabular_data(4096, torch.Generator().manual_seed(seed))
    x = (x - x.mean(dim=0)) / x.std(dim=0)
    return x[:BATCH].contiguous(), y[:BATCH].contiguous()


def make_mlp() -> nn.Module:
    example = load_example("mlp_classifier")
    return example.MLP(example.NUM_FEATURES, 128, 3, example.NUM_CLASSES)


def cnn_data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The example's bar images, scaled to [0, 1] and normalized per channel (2048 images)."""
    example = load_example("cnn_classifier")
    images, labels = example.make_bar_images(2048, torch.Generator().manual_seed(seed))
    x = images.float() / 255.0
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True)
    x = (x - mean) / std
    return x[:BATCH].contiguous(), labels[:BATCH].contiguous()


def make_cnn() -> nn.Module:
    return load_example("cnn_classifier").SmallCNN()


def adamw(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=1e-3)


# -- ResNet-18 (torchvision's layout, CIFAR stem) ----------------------------------------------
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 as in torchvision (BasicBlock, [2, 2, 2, 2], Kaiming fan-out init), with the
    usual CIFAR stem: a 3x3 stride-1 convolution and no max-pool."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        stages = []
        inplanes = 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(
                nn.Sequential(BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes))
            )
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet_data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-shaped synthetic images: a per-class pattern in noise, normalized per channel."""
    gen = torch.Generator().manual_seed(seed)
    templates = torch.randn(10, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (BATCH,), generator=gen)
    x = 0.5 * templates[y] + torch.randn(BATCH, 3, 32, 32, generator=gen)
    x = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / x.std(dim=(0, 2, 3), keepdim=True)
    return x.contiguous(), y


def sgd_resnet(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)


# -- workloads -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    build: Callable[[], nn.Module]
    optimizer: Callable[[nn.Module], torch.optim.Optimizer]
    data: Callable[[int], tuple[torch.Tensor, torch.Tensor]]
    optimizer_text: str
    warmup_steps: int
    timed_steps: int
    repeats: int


def workloads(args: argparse.Namespace) -> list[Workload]:
    quick = args.quick

    def repeats(full: int, fast: int) -> int:
        return args.repeats or (fast if quick else full)

    available = {
        "mlp": Workload(
            "mlp",
            "examples/mlp_classifier.py MLP 20-128-128-128-10 (ReLU), standardized tabular data",
            make_mlp,
            adamw,
            mlp_data,
            "AdamW lr 1e-3",
            warmup_steps=10,
            timed_steps=args.steps or (20 if quick else 50),
            repeats=repeats(11, 3),
        ),
        "cnn": Workload(
            "cnn",
            "examples/cnn_classifier.py SmallCNN (Conv-BN-ReLU-MaxPool x3), 3x16x16, 4 classes",
            make_cnn,
            adamw,
            cnn_data,
            "AdamW lr 1e-3",
            warmup_steps=3,
            timed_steps=args.steps or (5 if quick else 10),
            repeats=repeats(7, 3),
        ),
        "resnet18": Workload(
            "resnet18",
            "ResNet-18 (BasicBlock [2,2,2,2], CIFAR stem), 3x32x32, 10 classes",
            ResNet18,
            sgd_resnet,
            resnet_data,
            "SGD lr 0.1 momentum 0.9 wd 5e-4",
            warmup_steps=1,
            timed_steps=args.steps or 2,
            repeats=repeats(5, 1),
        ),
    }
    chosen = []
    for name in args.models.split(","):
        name = name.strip()
        if name not in available:
            raise SystemExit(f"unknown model {name!r}; choose from {', '.join(available)}")
        chosen.append(available[name])
    return chosen


# -- measurements ---------------------------------------------------------------------------------
def fresh(workload: Workload, seed: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = workload.build()
    model.train()
    return model, workload.optimizer(model)


def time_steps(
    workload: Workload, seed: int, x: torch.Tensor, y: torch.Tensor, steps: int
) -> dict[str, Any]:
    """Warm-up steps (untimed), then ``steps`` timed training steps, each timed alone."""
    model, optimizer = fresh(workload, seed)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()

    for _ in range(workload.warmup_steps):
        step()
    times = []
    cpu_start = time.process_time()
    wall_start = time.perf_counter()
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    wall = time.perf_counter() - wall_start
    cpu = time.process_time() - cpu_start
    return {
        "step_s": statistics.median(times),
        "steps_s": times,
        "cpu_over_wall": cpu / wall if wall > 0 else None,
    }


def run_check(
    workload: Workload, seed: int, x: torch.Tensor, y: torch.Tensor, *, experiments: bool
) -> dict[str, Any]:
    model, optimizer = fresh(workload, seed)
    cpu_start = time.process_time()
    start = time.perf_counter()
    report = babysit.check(
        model, x, y, loss_fn=nn.CrossEntropyLoss(), optimizer=optimizer, experiments=experiments
    )
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    trace = report.trace
    result: dict[str, Any] = {
        "wall_s": wall,
        "cpu_over_wall": cpu / wall if wall > 0 else None,
        "findings": [
            {
                "id": f.id,
                "name": f.name,
                "severity": f.severity.value,
                "layer": f.location.layer if f.location else None,
                "message": f.message,
            }
            for f in report.findings
        ],
        "internal_errors": list(trace.errors),
    }
    if experiments:
        records = trace.experiments
        result["protocol_s"] = (records.get("protocol") or {}).get("seconds")
        result["experiments"] = {
            name: summarize_experiment(name, records.get(name) or {}) for name in EXPERIMENTS
        }
    return result


def summarize_experiment(name: str, record: dict[str, Any]) -> dict[str, Any]:
    keep = {"seconds", "skipped", "skipped_run"}
    if name in ("overfit", "regularization"):
        keep |= {
            "steps",
            "max_steps",
            "reached",
            "diverged",
            "truncated",
            "lr",
            "initial_loss",
            "final_loss",
            "accuracy",
        }
    out = {key: record[key] for key in sorted(keep) if key in record}
    if name == "verified_fixes" and "skipped" not in record:
        out["verified"] = sorted(k for k in record if k != "seconds")
    return out


def bench_workload(
    workload: Workload, seed: int, log: Callable[[str], None], loads: list[list[float]]
) -> dict[str, Any]:
    x, y = workload.data(seed)
    params = sum(p.numel() for p in fresh(workload, seed)[0].parameters())
    log(
        f"{workload.name}: {params:,} parameters; 1 first-call round + {workload.repeats} "
        f"repeats of (step x {workload.timed_steps}, check, check(experiments=False))"
    )
    runs: dict[str, list[dict[str, Any]]] = {unit: [] for unit in UNITS}
    first: dict[str, dict[str, Any]] = {}
    for repeat in range(workload.repeats + 1):
        order = UNITS[repeat % len(UNITS) :] + UNITS[: repeat % len(UNITS)]
        load = _loadavg()
        if load:
            loads.append(load)
        for unit in order:
            gc.collect()
            if unit == "step":
                result = time_steps(workload, seed, x, y, workload.timed_steps)
            else:
                result = run_check(workload, seed, x, y, experiments=unit == "check")
            if repeat == 0:
                first[unit] = result
            else:
                runs[unit].append(result)
        label = "first call" if repeat == 0 else f"repeat {repeat}/{workload.repeats}"
        done = first if repeat == 0 else {unit: runs[unit][-1] for unit in UNITS}
        log(
            f"  {label}: step {done['step']['step_s'] * 1e3:.2f} ms, "
            f"protocol {done['check']['protocol_s']:.3f} s, "
            f"check {done['check']['wall_s']:.3f} s, "
            f"passive {done['passive']['wall_s']:.3f} s (load {load[0] if load else '?'})"
        )
    return summarize(workload, params, runs, first)


def _median(values: list[float | None]) -> float | None:
    clean = [v for v in values if v is not None]
    return statistics.median(clean) if clean else None


def summarize(
    workload: Workload,
    params: int,
    runs: dict[str, list[dict[str, Any]]],
    first: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    steps = [r["step_s"] for r in runs["step"]]
    protocol = [r["protocol_s"] for r in runs["check"]]
    checks = [r["wall_s"] for r in runs["check"]]
    passive = [r["wall_s"] for r in runs["passive"]]
    step_s = statistics.median(steps)
    protocol_s = statistics.median(protocol)
    per_experiment = {
        name: _median([r["experiments"][name].get("seconds") for r in runs["check"]])
        for name in EXPERIMENTS
    }
    accounted = sum(v for v in per_experiment.values() if v is not None)
    findings: dict[tuple[str, str, str], dict[str, Any]] = {}
    for unit in ("check", "passive"):
        for run in [first[unit], *runs[unit]]:
            for finding in run["findings"]:
                key = (finding["id"], finding["severity"], finding["layer"] or "")
                entry = findings.setdefault(key, {**finding, "runs": 0, "in": set()})
                entry["runs"] += 1
                entry["in"].add(unit)
    errors = [e for unit in ("check", "passive") for r in runs[unit] for e in r["internal_errors"]]

    def distinct(name: str, key: str) -> list[Any]:
        values = []
        for run in runs["check"]:
            value = run["experiments"][name].get(key)
            if value not in values:
                values.append(value)
        return values

    overfit = runs["check"][-1]["experiments"]["overfit"]
    regularization = runs["check"][-1]["experiments"]["regularization"]
    return {
        "name": workload.name,
        "description": workload.description,
        "optimizer": workload.optimizer_text,
        "parameters": params,
        "batch": BATCH,
        "repeats": workload.repeats,
        "warmup_steps": workload.warmup_steps,
        "timed_steps": workload.timed_steps,
        "step_s": step_s,
        "step_s_min": min(steps),
        "step_s_max": max(steps),
        "protocol_s": protocol_s,
        "protocol_s_min": min(protocol),
        "protocol_s_max": max(protocol),
        "step_equivalents": protocol_s / step_s,
        "step_equivalents_paired": statistics.median(
            p / s for p, s in zip(protocol, steps, strict=True)
        ),
        "check_s": statistics.median(checks),
        "check_step_equivalents": statistics.median(checks) / step_s,
        "passive_check_s": statistics.median(passive),
        "protocol_outside_experiments_s": protocol_s - accounted,
        "first_call": {
            "step_s": first["step"]["step_s"],
            "protocol_s": first["check"]["protocol_s"],
            "check_s": first["check"]["wall_s"],
            "passive_check_s": first["passive"]["wall_s"],
        },
        "experiment_s": per_experiment,
        "overfit": {
            "steps": distinct("overfit", "steps"),
            "reached": distinct("overfit", "reached"),
            "max_steps": overfit.get("max_steps"),
            "lr": overfit.get("lr"),
            "initial_loss": overfit.get("initial_loss"),
            "final_loss": overfit.get("final_loss"),
            "accuracy": overfit.get("accuracy"),
            "truncated": distinct("overfit", "truncated"),
            "diverged": distinct("overfit", "diverged"),
        },
        "regularization": {
            "ran": "steps" in regularization,
            "steps": regularization.get("steps"),
            "skipped": regularization.get("skipped_run") or regularization.get("skipped"),
            "final_loss": regularization.get("final_loss"),
        },
        "skipped": {
            name: runs["check"][-1]["experiments"][name].get("skipped")
            for name in EXPERIMENTS
            if runs["check"][-1]["experiments"][name].get("skipped")
        },
        "findings": [
            {**entry, "in": sorted(entry["in"])}
            for entry in sorted(findings.values(), key=lambda e: (e["id"], e["layer"] or ""))
        ],
        "false_alarms": sorted(
            {f"{e['id']} {e['name']}" for e in findings.values() if e["severity"] != "info"}
        ),
        "internal_errors": errors,
        "cpu_over_wall": {
            "step": _median([r["cpu_over_wall"] for r in runs["step"]]),
            "check": _median([r["cpu_over_wall"] for r in runs["check"]]),
        },
        "runs": {unit: runs[unit] for unit in UNITS},
        "first_runs": first,
    }


# -- output --------------------------------------------------------------------------------------
def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "babysit": babysit.__version__,
        "babysit_source_sha256": source_digest(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "platform": platform.platform(),
        "processor": cpu_name(),
        "cpu_count": os.cpu_count(),
    }


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.3f}"


def render(results: dict[str, Any]) -> str:
    info = results["machine"]
    loads = results["load"]
    lines = [
        f"babysit {info['babysit']} (sources {info['babysit_source_sha256']}), torch "
        f"{info['torch']}, {info['torch_threads']} thread(s), {info['processor']} "
        f"x{info['cpu_count']}",
        f"load average (1/5/15 min): start {loads['start']}, end {loads['end']}, "
        f"1-min max during the run {loads['max_1min']}; mode {results['mode']}, "
        f"{results['total_s']:.0f} s in all",
        "",
        "One training step = zero_grad + forward + loss + backward + optimizer step on the full "
        f"batch of {results['batch_size']}. step-eq = protocol s / step s (medians).",
        "",
    ]
    header = (
        f"{'model':<9} {'params':>10} {'step ms':>9} {'(min-max)':>15} {'protocol s':>10} "
        f"{'(min-max)':>15} {'step-eq':>8} {'check() s':>9} {'passive s':>9} {'1st check s':>11}"
    )
    lines += [header, "-" * len(header)]
    for w in results["workloads"]:
        lines.append(
            f"{w['name']:<9} {w['parameters']:>10,} {_ms(w['step_s']):>9} "
            f"{_ms(w['step_s_min']) + '-' + _ms(w['step_s_max']):>15} "
            f"{w['protocol_s']:>10.3f} "
            f"{_s(w['protocol_s_min']) + '-' + _s(w['protocol_s_max']):>15} "
            f"{w['step_equivalents']:>8.1f} {w['check_s']:>9.3f} {w['passive_check_s']:>9.3f} "
            f"{w['first_call']['check_s']:>11.3f}"
        )
    lines += [
        "",
        "check() s: the whole babysit.check() call (copy, passive forward pass, protocol, "
        "judging);",
        "passive s: check(experiments=False); 1st check s: the first, untimed round's check().",
        "",
        "Seconds per experiment (medians; 'other' = protocol - sum of the experiments):",
    ]
    header = f"{'model':<9} " + " ".join(f"{name:>14}" for name in (*EXPERIMENTS, "other"))
    lines += [header, "-" * len(header)]
    for w in results["workloads"]:
        cells = [_s(w["experiment_s"][name]) for name in EXPERIMENTS]
        cells.append(_s(w["protocol_outside_experiments_s"]))
        lines.append(f"{w['name']:<9} " + " ".join(f"{c:>14}" for c in cells))
    lines.append("")
    for w in results["workloads"]:
        o, r = w["overfit"], w["regularization"]
        steps = "/".join(str(s) for s in o["steps"])
        reached = "/".join("yes" if v else "no" for v in o["reached"])
        flags = [name for name in ("truncated", "diverged") if any(o[name]) and o[name] != [None]]
        lines.append(
            f"{w['name']}: {w['optimizer']}; cpu/wall step {_s(w['cpu_over_wall']['step'])}, "
            f"check {_s(w['cpu_over_wall']['check'])}"
        )
        lines.append(
            f"  overfit: {steps} of {o['max_steps']} steps, reached {reached}, lr {o['lr']:g}, "
            f"loss {o['initial_loss']:.4g} -> {o['final_loss']:.4g}, accuracy {o['accuracy']}"
            + (f", {' '.join(flags)}" if flags else "")
        )
        if r["ran"]:
            lines.append(
                f"  regularization run: {r['steps']} steps, final loss {r['final_loss']:.4g}"
            )
        else:
            lines.append(f"  regularization run: skipped ({r['skipped']})")
        for name, reason in w["skipped"].items():
            if name != "regularization":
                lines.append(f"  {name}: skipped ({reason})")
        if w["findings"]:
            for f in w["findings"]:
                where = f" [{f['layer']}]" if f["layer"] else ""
                lines.append(
                    f"  finding {f['id']} {f['name']} ({f['severity']}){where}, "
                    f"{f['runs']} run(s) of {', '.join(f['in'])}: {f['message']}"
                )
        else:
            lines.append("  findings: none")
        if w["false_alarms"]:
            lines.append(
                "  FALSE ALARM: a clean model got warning/error findings: "
                + ", ".join(w["false_alarms"])
            )
        if w["internal_errors"]:
            lines.append(f"  babysit internal errors: {w['internal_errors'][:3]}")
    lines.append("")
    target = results["target"]
    if target is None:
        lines.append(f"target: not evaluated ({TARGET_WORKLOAD} was not run)")
    else:
        lines.append(
            f"target ({TARGET_WORKLOAD}): protocol <= {TARGET_STEP_EQUIVALENTS:g} step-eq: "
            f"{target['step_equivalents']:.1f} -> {'MET' if target['step_ok'] else 'NOT MET'}; "
            f"protocol <= {TARGET_SECONDS:g} s: {target['protocol_s']:.2f} s -> "
            f"{'MET' if target['seconds_ok'] else 'NOT MET'} "
            f"(whole check(): {target['check_s']:.2f} s, "
            f"{target['check_step_equivalents']:.1f} step-eq)"
        )
    clean = all(not w["false_alarms"] for w in results["workloads"])
    lines.append(
        "clean models: no warning/error findings"
        if clean
        else "clean models: FALSE ALARMS (see above)"
    )
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats and steps")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed repeats per workload (mlp 11, cnn 7, resnet18 5; --quick 3, 3, 1)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="timed training steps per step run (mlp 50, cnn 10, resnet18 2; --quick 20, 5, 2)",
    )
    parser.add_argument(
        "--models", default="mlp,cnn,resnet18", help="comma-separated: mlp, cnn, resnet18"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    for name in ("repeats", "steps", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def warm_up_imports() -> None:
    """One tiny check() so that babysit's lazy imports are not charged to the first workload."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    optimizer = torch.optim.AdamW(model.parameters())
    babysit.check(model, x, y, loss_fn=nn.CrossEntropyLoss(), optimizer=optimizer)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    loads: list[list[float]] = []
    start_load = _loadavg()
    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "machine": machine_info(),
        "batch_size": BATCH,
        "seed": args.seed,
        "workloads": [],
    }
    started = time.perf_counter()
    warm_up_imports()
    for workload in workloads(args):
        results["workloads"].append(bench_workload(workload, args.seed, log, loads))
    end_load = _loadavg()
    if end_load:
        loads.append(end_load)
    results["total_s"] = time.perf_counter() - started
    results["load"] = {
        "start": start_load,
        "end": end_load,
        "max_1min": max((load[0] for load in loads), default=None),
        "samples": loads,
    }
    target = next((w for w in results["workloads"] if w["name"] == TARGET_WORKLOAD), None)
    results["target"] = (
        None
        if target is None
        else {
            "step_equivalents": target["step_equivalents"],
            "protocol_s": target["protocol_s"],
            "check_s": target["check_s"],
            "check_step_equivalents": target["check_step_equivalents"],
            "step_ok": target["step_equivalents"] <= TARGET_STEP_EQUIVALENTS,
            "seconds_ok": target["protocol_s"] <= TARGET_SECONDS,
        }
    )
    print(render(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
