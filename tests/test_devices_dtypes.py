"""Probes under other dtypes, sparse gradients, in-place updates and torch.compile (CPU).

The CUDA side of the same paths is checked by a script run on a GPU machine; here every case
that a CPU can reproduce: float64 and half-precision models, bf16 autocast, GradScaler,
SparseAdam, tensors the script changes in place before the flush, and compiled models.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import babysit
from babysit.probes.recorder import Recorder
from babysit.session import Session
from babysit.trace import Trace


def mlp(dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).to(dtype)


def batch(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(32, 8, generator=generator).to(dtype)
    return x, torch.randint(0, 4, (32,), generator=generator)


def train(model, optimizer, steps=4, sample_every=1, dtype=torch.float32, scaler=None, cast=None):
    x, y = batch(dtype)
    with babysit.watch(model, optimizer, sample_every=sample_every, overhead_budget=None) as s:
        for _ in range(steps):
            optimizer.zero_grad()
            if cast is not None:
                with torch.autocast("cpu", dtype=cast):
                    loss = F.cross_entropy(model(x), y)
            else:
                loss = F.cross_entropy(model(x), y)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
    return s.trace


def grad_norm(module: nn.Module) -> float:
    return math.sqrt(sum(float(p.grad.float().norm()) ** 2 for p in module.parameters()))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_models_in_other_dtypes_keep_every_probe(dtype):
    # float64 used to switch the activation probe off (vector_norm refuses a narrowing dtype)
    model = mlp(dtype)
    trace = train(model, torch.optim.SGD(model.parameters(), lr=0.1), dtype=dtype)
    assert trace.errors == []
    assert len(trace.layers["0"]["samples"]) == 4
    assert all(math.isfinite(s["var"]) for s in trace.layers["0"]["samples"])
    assert trace.gradients[-1]["layers"]["2"]["grad_norm"] == pytest.approx(
        grad_norm(model[2]), rel=1e-3
    )


def test_half_precision_gradient_norms_are_reduced_in_float32():
    # Σ|g| of an fp16 layer passes 65504 easily: the fused norm returned inf in fp16
    torch.manual_seed(0)
    model = nn.Linear(256, 256).half()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    x = torch.ones(4, 256, dtype=torch.float16)
    with babysit.watch(model, optimizer, sample_every=1, overhead_budget=None) as sitter:
        optimizer.zero_grad()
        model(x).float().sum().backward()  # every weight gradient is 4
        optimizer.step()
    layer = sitter.trace.gradients[0]["layers"]["(root)"]
    assert sitter.trace.errors == []
    assert layer["grad_abs_mean"] == pytest.approx(4.0)  # (65536·4 + 256·4) / 65792
    assert layer["grad_norm"] == pytest.approx(grad_norm(model), rel=1e-3)


def test_bf16_autocast_on_cpu_records_losses_and_statistics():
    model = mlp()
    trace = train(model, torch.optim.SGD(model.parameters(), lr=0.1), cast=torch.bfloat16)
    assert trace.errors == []
    assert all(isinstance(r["loss"], float) for r in trace.steps)
    assert len(trace.layers["2"]["samples"]) == 4


@pytest.mark.parametrize("fused", [False, True])
def test_grad_scaler_gradients_are_read_unscaled(fused):
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    trace = train(model, optimizer, steps=2, scaler=scaler, cast=torch.float16)
    assert trace.errors == []
    # the gradients left after the step are the unscaled ones the trace must hold
    recorded = trace.gradients[-1]["layers"]["0"]["grad_norm"]
    assert recorded == pytest.approx(grad_norm(model[0]), rel=1e-3)
    assert recorded < 100  # not multiplied by the loss scale (4096)


def test_sparse_embedding_gradients_with_sparse_adam():
    torch.manual_seed(0)
    embedding = nn.Embedding(50, 8, sparse=True)
    optimizer = torch.optim.SparseAdam(embedding.parameters(), lr=0.01)
    ids = torch.tensor([[1, 1, 2], [2, 3, 1]])  # repeated rows: an uncoalesced gradient
    with babysit.watch(embedding, optimizer, sample_every=1, overhead_budget=None) as sitter:
        for _ in range(3):
            optimizer.zero_grad()
            embedding(ids).square().sum().backward()
            optimizer.step()
    assert sitter.trace.errors == []
    expected = float(embedding.weight.grad.to_dense().norm())
    assert sitter.trace.gradients[-1]["layers"]["(root)"]["grad_norm"] == pytest.approx(
        expected, rel=1e-5
    )
    assert "update_norm" in sitter.trace.gradients[-1]["layers"]["(root)"]


def test_a_tensor_learning_rate_is_recorded_per_step_under_a_scheduler():
    # schedulers update a tensor lr in place; the trace held one tensor for all steps
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=torch.tensor(0.01))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    x, y = batch()
    with babysit.watch(model, optimizer, sample_every=10, overhead_budget=None) as sitter:
        for _ in range(4):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
            scheduler.step()
    lrs = [r["lr"] for r in sitter.trace.steps]
    assert lrs == pytest.approx([0.01, 0.005, 0.0025, 0.00125])


def test_a_loss_scaled_in_place_after_the_call_is_recorded_as_computed():
    # gradient accumulation scripts write `loss /= steps` before backward
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = batch()
    seen = []
    with babysit.watch(model, optimizer, sample_every=10, overhead_budget=None) as sitter:
        for _ in range(3):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            seen.append(float(loss.detach()))
            loss /= 4
            loss.backward()
            optimizer.step()
    assert [r["loss"] for r in sitter.trace.steps] == pytest.approx(seen)
    assert sitter.trace.training_losses()[0]["value"] == pytest.approx(seen[0])


def test_a_logged_tensor_updated_in_place_keeps_its_logged_value():
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    running = torch.tensor(0.75)
    with babysit.watch(model, optimizer, sample_every=10, overhead_budget=None) as sitter:
        sitter.log(val_loss=running)
        running.add_(100.0)
    assert sitter.trace.metrics[0]["val_loss"] == pytest.approx(0.75)
    assert sitter.trace.evals[0]["val_loss"] == pytest.approx(0.75)


def test_a_scalar_that_cannot_be_stacked_is_an_error_not_a_crash():
    trace = Trace()
    recorder = Recorder(trace)
    recorder.series("loss", torch.ones(2))  # not a scalar: reshape(()) fails at the flush
    recorder.flush()  # must not raise into the optimizer hook
    assert trace.errors and trace.errors[0]["probe"] == "flush"


def test_half_precision_loss_weights_follow_the_float32_copies():
    model = mlp(torch.float16)
    x, y = batch(torch.float16)
    loss_fn = nn.CrossEntropyLoss(weight=torch.ones(4, dtype=torch.float16))
    report = babysit.check(model, x, y, loss_fn=loss_fn, budget=5)
    assert "skipped" not in report.trace.experiments["gradients"]
    assert "skipped" not in report.trace.experiments["overfit"]
    assert loss_fn.weight.dtype == torch.float16  # the user's loss is untouched


def test_unsampled_steps_never_read_a_tensor_on_the_host(monkeypatch):
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = batch()
    reads: list[str] = []
    with babysit.watch(model, optimizer, sample_every=1000, overhead_budget=None):
        for step in range(6):
            if step == 1:  # step 0 is sampled; the rest are not
                for name in ("item", "tolist", "cpu", "__bool__", "__float__", "numpy"):
                    original = getattr(torch.Tensor, name)

                    def spy(self, *args, _name=name, _original=original, **kwargs):
                        reads.append(_name)
                        return _original(self, *args, **kwargs)

                    monkeypatch.setattr(torch.Tensor, name, spy)
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        monkeypatch.undo()
    assert reads == []


# -- torch.compile ----------------------------------------------------------------------------


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x, y=None):
        out = self.head(F.relu(self.bn(self.conv(x))).mean((2, 3)))
        if y is None:
            return out
        return {"loss": F.cross_entropy(out, y), "logits": out}  # Hugging Face style


def compiled_run(own_loss: bool, steps: int = 12):
    dynamo = pytest.importorskip("torch._dynamo")
    from torch._dynamo.utils import counters

    dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    model = SmallCNN()
    compiled = torch.compile(model, backend="eager")  # Dynamo's guards, no code generation
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(6, 3, 6, 6), torch.randint(0, 4, (6,))
    with babysit.watch(compiled, optimizer, sample_every=3, overhead_budget=None) as sitter:
        for _ in range(steps):
            optimizer.zero_grad()
            loss = compiled(x, y)["loss"] if own_loss else F.cross_entropy(compiled(x), y)
            loss.backward()
            optimizer.step()
    graphs = counters["stats"]["unique_graphs"]
    dynamo.reset()
    return sitter.trace, graphs


@pytest.mark.parametrize("own_loss", [False, True])
def test_a_compiled_model_is_not_recompiled_by_the_probes(own_loss):
    # the hooks were traced: every sampled step changed a guard, and after 8 recompiles
    # Dynamo ran the model uncompiled for good
    trace, graphs = compiled_run(own_loss)
    assert trace.errors == []
    assert graphs == (2 if own_loss else 1)  # the loss's bookkeeping is one graph break
    assert len(trace.layers["conv"]["samples"]) == 4  # steps 0, 3, 6, 9 ran eagerly
    assert trace.batchnorm["bn"]["batch_sizes"] == [[6, 12]]  # every forward, compiled or not
    assert all(isinstance(r["loss"], float) for r in trace.steps)
    assert len(trace.gradients) == 4


def test_compiled_model_hooks_are_removed_and_the_stance_restored():
    pytest.importorskip("torch._dynamo")
    model = SmallCNN()
    compiled = torch.compile(model, backend="eager")
    session = Session(Trace(), sample_every=1)
    with session:
        watch = session.add_model(compiled)
        watch.root_pre(compiled, (torch.randn(2, 3, 6, 6),), {})
        assert watch._stance is not None  # the sampled forward runs eagerly
    assert watch._stance is None
    for module in [compiled, *model.modules()]:
        assert not module._forward_hooks and not module._forward_pre_hooks
