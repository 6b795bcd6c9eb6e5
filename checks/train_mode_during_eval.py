from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.trace import Trace


class TrainModeDuringEval(Check):
    """Validation runs with Dropout or BatchNorm still in training mode (`model.eval()` missing).

    ## What it does
    Watches every forward pass of the trained model made without gradients
    (`torch.no_grad()` / `torch.inference_mode()`), which is how evaluation runs. Fires when
    Dropout layers (p > 0) or BatchNorm layers with running statistics are in training mode
    during such a pass, over a whole validation loop (at least `min_forwards` forward passes
    at the same step, or a validation loss computed from them).

    ## Why is this bad?
    In training mode Dropout zeroes a random part of the units, so the validation loss is
    noisy and pessimistic, and BatchNorm normalizes each validation batch with its own
    statistics and updates its running statistics with validation data. The validation
    numbers then differ from what the deployed model (in eval mode) does, early stopping and
    model selection follow the noise, and the running statistics drift toward the validation
    set. `torch.no_grad()` switches off gradients only; it does not change module modes.

    ## Example
    ```python
    for epoch in range(epochs):
        model.train()
        ...
        with torch.no_grad():            # model.eval() missing
            val_loss = sum(loss_fn(model(x), y) for x, y in val_loader)
    ```

    ## Fix
    ```python
    model.eval()
    with torch.no_grad():
        val_loss = sum(loss_fn(model(x), y).item() for x, y in val_loader)
    model.train()
    ```

    ## Thresholds
    * `min_forwards` = 2: a validation loop runs the model on several batches at one step; a
      single forward under `no_grad` in training mode per step is a deliberate pattern
      (pseudo-labels, Monte-Carlo dropout) and is not reported unless a validation loss is
      computed from it. Forwards from `torch.optim.swa_utils.update_bn`, which recomputes
      BatchNorm statistics in training mode on purpose, are never counted, nor are forwards
      of a model that is itself in eval mode with some Dropout layers switched back to
      training mode (Monte-Carlo dropout, Gal & Ghahramani 2016): `model.eval()` was called.

    ## References
    * CS231n, "Neural Networks Part 2/3" (dropout at test time, BatchNorm at test time).
    * Y. Gal and Z. Ghahramani, "Dropout as a Bayesian Approximation" (ICML 2016): dropout
      kept on at test time on purpose.
    * PyTorch docs, `nn.Module.eval` and "Autograd mechanics: locally disabling gradient
      computation" (`no_grad` does not change module modes).
    """

    id = "BS303"
    name = "train-mode-during-eval"
    severity = Severity.ERROR
    summary = "validation forwards run with Dropout/BatchNorm in training mode"
    requires = ("events",)
    thresholds = {"min_forwards": 2}

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        events = [e for e in trace.events if e.get("kind") == "eval-train-mode"]
        eval_steps = {e.get("step") for e in trace.evals if e.get("source") == "loss"}
        loops = [
            e
            for e in events
            if e.get("count", 0) >= thresholds["min_forwards"] or e.get("step") in eval_steps
        ]
        if not loops:
            return
        first = loops[0]
        modules = list(first.get("modules") or [])
        more = first.get("modules_total", len(modules)) - len(modules)
        listed = ", ".join(modules) + (f" and {more} more" if more > 0 else "")
        kinds = []
        if first.get("dropout"):
            kinds.append(f"{first['dropout']} Dropout")
        if first.get("batchnorm"):
            kinds.append(f"{first['batchnorm']} BatchNorm")
        forwards = sum(e.get("count", 0) for e in loops)
        where = f" at {first['file']}:{first['line']}" if first.get("file") else ""
        yield self.finding(
            f"{forwards} forward passes without gradients{where} ran with "
            f"{' and '.join(kinds) or 'mode-sensitive'} layer(s) in training mode ({listed}) "
            f"in {len(loops)} validation loop(s): `model.eval()` is missing, so validation "
            "uses random dropout masks and batch statistics.",
            "Call `model.eval()` before validating and `model.train()` before training again:"
            "\n```python\nmodel.eval()\nwith torch.no_grad():\n    ...  # validation loop\n"
            "model.train()\n```",
            evidence={
                "forwards": forwards,
                "validation_loops": len(loops),
                "modules_in_training_mode": modules,
                "first_step": first.get("step"),
            },
            file=first.get("file"),
            line=first.get("line"),
            layer=modules[0] if len(modules) == 1 else None,
        )
