"""Lightning and Hugging Face ``Trainer``: zero-code ``babysit audit``, the explicit callbacks,
the inert entry point, the import guard and the child-process autostart (DDP ranks)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points

import pytest
import torch
import torch.nn.functional as F
from conftest import EXAMPLES, ROOT
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from typer.testing import CliRunner

import babysit
from babysit import _autostart
from babysit.cli import app
from babysit.trace import Trace

runner = CliRunner()


def _audit(tmp_path, script, args=(), *options):
    trace_file = tmp_path / "trace.json"
    result = runner.invoke(
        app,
        [
            "audit",
            str(script),
            "--format",
            "json",
            "--trace",
            str(trace_file),
            *options,
            "--",
            *args,
        ],
    )
    assert result.exit_code in (0, 1), result.output
    return result, json.loads(result.stdout), Trace.load(trace_file)


def _loud(report):
    return {f["name"] for f in report["findings"] if f["severity"] in ("error", "warning")}


def _evals(trace, source):
    return [e for e in trace.evals if e["source"] == source]


# -- Lightning -------------------------------------------------------------------------------


@pytest.fixture
def pl():
    return pytest.importorskip("lightning.pytorch")


def _lightning_module(pl, *, lr=1e-2, broken_loss=False):
    """A LightningModule whose training_step calls a child (``self.model(x)``), not forward."""

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.model(x), y)
            return loss / 0.0 if broken_loss else loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("valid/loss", F.cross_entropy(self.model(x), y))

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=lr)

    return Module()


def _loaders():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
    data = TensorDataset(x, y)
    return DataLoader(data, batch_size=32, shuffle=True, generator=g), DataLoader(data, 64)


def _trainer(pl, epochs=3, callbacks=()):
    return pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
    )


def test_lightning_example_audit_is_silent_and_captures_the_run(pl, tmp_path):
    result, report, trace = _audit(tmp_path, EXAMPLES / "lightning_classifier.py")
    assert _loud(report) == set(), report["findings"]
    assert result.exit_code == 0
    assert [m["label"] for m in trace.facts["models"]] == ["Classifier"]
    assert [o["class"] for o in trace.facts["optimizers"]] == ["AdamW"]
    assert trace.run["optimizer_steps"] == 160  # 5 epochs x 32 batches
    assert [e["epoch"] for e in trace.epochs] == [1, 2, 3, 4, 5]
    # the entry point added the callback: Lightning's logged val_loss after each epoch ...
    reported = _evals(trace, "lightning")
    assert [(e["epoch"], e["step"]) for e in reported] == [(k, 32 * k) for k in range(1, 6)]
    # ... agrees with the validation passes the audit captured from the loss calls
    captured = {e["step"]: e["val_loss"] for e in _evals(trace, "loss") if e["epoch"]}
    for entry in reported:
        assert entry["val_loss"] == pytest.approx(captured[entry["step"]], rel=1e-5)


def test_lightning_example_lr_too_high(pl, tmp_path):
    _, report, trace = _audit(
        tmp_path, EXAMPLES / "lightning_classifier.py", ["--bug", "lr-too-high"]
    )
    losses = [s["loss"] for s in trace.steps if "loss" in s]
    assert max(losses[:5]) > 100 * losses[0]  # AdamW at lr 1.0 blows the loss up at once
    final = _evals(trace, "lightning")[-1]["val_loss"]
    assert final == pytest.approx(math.log(10), rel=0.05)  # and it ends no better than chance
    assert "train-val-gap" in _loud(report), report["findings"]


def test_lightning_example_overfit(pl, tmp_path):
    _, report, trace = _audit(tmp_path, EXAMPLES / "lightning_classifier.py", ["--bug", "overfit"])
    val = [e["val_loss"] for e in _evals(trace, "lightning")]
    assert len(val) == 40
    assert val[-1] > 1.4 * min(val)
    assert "train-val-gap" in _loud(report), report["findings"]


def test_lightning_callback_in_code_runs_its_own_session(pl, tmp_path, no_leftover_hooks):
    from babysit.integrations.lightning import BabysitCallback

    callback = BabysitCallback(output=tmp_path / "report.json", print_report=False)
    train, val = _loaders()
    _trainer(pl, callbacks=[callback]).fit(_lightning_module(pl), train, val)

    report = callback.report
    assert report is not None and report.ok, report.findings
    trace = report.trace
    assert trace.mode == "watch"
    assert [m["label"] for m in trace.facts["models"]] == ["Sequential"]  # self.model, found
    assert trace.run["optimizer_steps"] == 24
    reported = _evals(trace, "lightning")  # logged as "valid/loss"
    assert [e["epoch"] for e in reported] == [1, 2, 3]
    assert reported[-1]["val_loss"] < reported[0]["val_loss"]
    assert json.loads((tmp_path / "report.json").read_text())["target"] == "Module"


def test_lightning_callback_fail_on_raises_and_cleans_up(pl, no_leftover_hooks):
    from babysit.integrations.lightning import BabysitCallback

    callback = BabysitCallback(fail_on="error", print_report=False)
    train, val = _loaders()
    with pytest.raises(babysit.FindingsError, match="loss-diverging"):
        _trainer(pl, epochs=1, callbacks=[callback]).fit(
            _lightning_module(pl, broken_loss=True), train, val
        )


def test_lightning_callback_joins_a_watch_session_once(pl, no_leftover_hooks):
    from babysit.integrations.lightning import BabysitCallback

    module = _lightning_module(pl)
    callback = BabysitCallback()
    train, val = _loaders()
    with babysit.watch(module.model) as sitter:
        # the entry point's callback comes on top of the explicit one and must stay inert
        trainer = _trainer(pl, epochs=2, callbacks=[callback])
        assert sum(type(c).__name__ == "BabysitCallback" for c in trainer.callbacks) == 2
        trainer.fit(module, train, val)
    assert callback.report is None  # the session is the sitter's
    assert [e["epoch"] for e in _evals(sitter.trace, "lightning")] == [1, 2]
    assert sitter.report.ok


def test_lightning_entry_points_are_registered_and_inert_without_babysit(pl, monkeypatch):
    from babysit.integrations import lightning as integration

    monkeypatch.delenv(_autostart.ENV, raising=False)
    groups = {
        "lightning.pytorch.callbacks_factory": "callbacks_factory",
        "pytorch_lightning.callbacks_factory": "pytorch_lightning_callbacks_factory",
    }
    for group, function in groups.items():
        [point] = [p for p in entry_points(group=group) if p.name == "babysit"]
        assert point.value == f"babysit.integrations.lightning:{function}"
        assert point.load()() == []
    assert not any(type(c).__name__ == "BabysitCallback" for c in _trainer(pl).callbacks)
    with babysit.watch(nn.Linear(2, 2)):
        [callback] = integration.callbacks_factory()
    assert isinstance(callback, pl.Callback)
    monkeypatch.setenv(_autostart.ENV, "1")
    assert len(integration.callbacks_factory()) == 1


def test_pytorch_lightning_namespace(no_leftover_hooks):
    ptl = pytest.importorskip("pytorch_lightning")
    from babysit.integrations.lightning import callback_class

    callback = callback_class("pytorch_lightning")(print_report=False)
    assert isinstance(callback, ptl.Callback)
    train, val = _loaders()
    _trainer(ptl, epochs=2, callbacks=[callback]).fit(_lightning_module(ptl), train, val)
    assert [e["epoch"] for e in _evals(callback.report.trace, "lightning")] == [1, 2]


# -- Hugging Face Trainer --------------------------------------------------------------------


@pytest.fixture
def transformers():
    module = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    return module


def test_hf_example_audit_captures_the_run_without_patching(transformers, tmp_path):
    init = transformers.Trainer.__init__
    _, report, trace = _audit(tmp_path, EXAMPLES / "hf_trainer_classifier.py")
    assert transformers.Trainer.__init__ is init
    assert [m["label"] for m in trace.facts["models"]] == ["BertForSequenceClassification"]
    assert [o["class"] for o in trace.facts["optimizers"]] == ["AdamW"]
    assert trace.run["optimizer_steps"] == 128  # 4 epochs x 32 batches
    assert [e["epoch"] for e in trace.epochs] == [1, 2, 3, 4]
    passes = _evals(trace, "loss")  # model.eval() + no_grad forwards, one pass per epoch
    assert [e["epoch"] for e in passes[:4]] == [1, 2, 3, 4]
    assert passes[3]["val_loss"] < 0.5 * passes[0]["val_loss"]
    assert "train-val-gap" not in _loud(report)


def test_hf_example_audit_is_silent(transformers, tmp_path):
    result, report, _ = _audit(tmp_path, EXAMPLES / "hf_trainer_classifier.py")
    assert _loud(report) == set(), report["findings"]
    assert result.exit_code == 0


def test_hf_example_lr_too_high(transformers, tmp_path):
    _, report, trace = _audit(
        tmp_path, EXAMPLES / "hf_trainer_classifier.py", ["--bug", "lr-too-high"]
    )
    losses = [s["loss"] for s in trace.steps if "loss" in s]
    assert max(losses[:5]) > 5 * losses[0]
    final = _evals(trace, "loss")[-1]["val_loss"]
    assert final == pytest.approx(math.log(2), rel=0.05)  # no better than chance
    assert "train-val-gap" in _loud(report), report["findings"]


def _tiny_bert_trainer(transformers, tmp_path, callbacks, epochs=2):
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
    )
    model = transformers.BertForSequenceClassification(config)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, 50, (64, 16), generator=g)
    labels = (ids[:, 1] > 25).long()
    rows = [
        {"input_ids": i, "attention_mask": torch.ones(16, dtype=torch.long), "labels": y}
        for i, y in zip(ids, labels, strict=True)
    ]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        num_train_epochs=epochs,
        per_device_train_batch_size=16,
        learning_rate=5e-3,
        eval_strategy="epoch",
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=rows, eval_dataset=rows, callbacks=callbacks
    )
    return trainer, model


def test_hf_callback_in_code_runs_its_own_session(transformers, tmp_path, no_leftover_hooks):
    from babysit.integrations.transformers import BabysitCallback

    callback = BabysitCallback(output=tmp_path / "report.json", print_report=False)
    trainer, _ = _tiny_bert_trainer(transformers, tmp_path, [callback])
    trainer.train()
    trace = callback.report.trace
    assert trace.mode == "watch"
    assert [m["label"] for m in trace.facts["models"]] == ["BertForSequenceClassification"]
    assert trace.run["optimizer_steps"] == 8
    assert [e["epoch"] for e in trace.epochs] == [1, 2]
    assert [e["epoch"] for e in _evals(trace, "transformers")] == [1, 2]
    assert json.loads((tmp_path / "report.json").read_text())["run"]["optimizer_steps"] == 8
    trainer.evaluate()  # after train(): no session any more, nothing recorded, no error
    assert len(_evals(trace, "transformers")) == 2


def test_hf_callback_joins_a_watch_session(transformers, tmp_path, no_leftover_hooks):
    from babysit.integrations.transformers import BabysitCallback

    callback = BabysitCallback()
    trainer, model = _tiny_bert_trainer(transformers, tmp_path, [callback], epochs=1)
    with babysit.watch(model) as sitter:
        trainer.train()
    assert callback.report is None
    [reported] = _evals(sitter.trace, "transformers")
    assert reported["epoch"] == 1 and reported["step"] == 4


# -- without the libraries -------------------------------------------------------------------


def test_importing_the_integrations_imports_no_trainer_library():
    code = (
        "import sys, babysit.integrations.lightning, babysit.integrations.transformers\n"
        "print(sorted(m for m in ('lightning', 'pytorch_lightning', 'transformers') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_callbacks_without_the_library_give_a_clear_import_error(monkeypatch):
    from babysit.integrations import lightning as pl_integration
    from babysit.integrations import transformers as hf_integration

    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "transformers"):
        monkeypatch.setitem(sys.modules, name, None)  # what an absent package looks like
    monkeypatch.setattr(pl_integration, "_classes", {})
    monkeypatch.setattr(hf_integration, "_class", None)
    with pytest.raises(ImportError, match="pip install lightning"):
        from babysit.integrations.lightning import BabysitCallback  # noqa: F401
    with pytest.raises(ImportError, match="pip install lightning"):
        pl_integration.callback_class("pytorch_lightning")
    with pytest.raises(ImportError, match="pip install transformers"):
        hf_integration.BabysitCallback()
    with pytest.raises(AttributeError):
        pl_integration.NoSuchThing  # noqa: B018


# -- child processes (Lightning DDP ranks) ---------------------------------------------------


def test_autostart_environment_protocol(tmp_path):
    read = _autostart.Autostart.from_env
    assert read({}) is None
    assert read({_autostart.ENV: "0"}) is None
    assert read({_autostart.ENV: "1"}) == _autostart.Autostart(report=True)
    options = _autostart.Autostart(tmp_path, sample_every=5, overhead_budget=None)
    assert read({_autostart.ENV: options.to_env()}) == options


CHILD_SCRIPT = """
    import os, subprocess, sys
    import torch, torch.nn.functional as F
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    import lightning.pytorch as pl

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
        def forward(self, x):
            return self.net(x)
        def training_step(self, batch, i):
            x, y = batch
            return F.cross_entropy(self(x), y)
        def validation_step(self, batch, i):
            x, y = batch
            self.log("val_loss", F.cross_entropy(self(x), y))
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    if "LOCAL_RANK" not in os.environ:
        # what Lightning's DDP launcher does: start the other rank as `python train.py`
        env = {**os.environ, "LOCAL_RANK": "1"}
        subprocess.run([sys.executable, os.path.abspath(sys.argv[0])], env=env, check=True)
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    data = TensorDataset(x, y)
    pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False).fit(
        Module(), DataLoader(data, batch_size=16), DataLoader(data, batch_size=32))
"""


def test_audit_collects_the_trace_of_a_relaunched_rank(pl, tmp_path, monkeypatch):
    monkeypatch.delenv(_autostart.ENV, raising=False)
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(CHILD_SCRIPT))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the child imports this checkout's babysit
    result, report, trace = _audit(tmp_path, script, (), "--no-preflight")
    assert result.exit_code == 0, report["findings"]
    [child] = trace.run["other_ranks"]
    assert child["rank"] == 1 and child["steps"] == 8 and child["epochs"] == 2
    assert child["models"] == ["Module"] and child["error"] is None
    assert trace.run["optimizer_steps"] == 8  # rank 0: the audit's own process
    assert any("rank 1" in note for note in report["notes"])
    assert _autostart.ENV not in os.environ  # removed after the audit
