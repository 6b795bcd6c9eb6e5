from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from babysit.check import Check, Finding, Severity
from babysit.trace import Trace


class ParametersWithoutGradient(Check):
    """Trainable parameters get no gradient, or do not change when the optimizer steps.

    ## What it does
    After one forward and backward pass on a copy of the model, lists the parameters with
    `requires_grad=True` whose `.grad` is `None` (not reached by backpropagation) or
    identically zero, and, when the optimizer is known, the trainable parameters that are not
    in any of its parameter groups or that do not change after one `optimizer.step()`.
    Parameters frozen on purpose (`requires_grad=False`) are not reported.

    ## Why is this bad?
    Those weights keep their initial values forever. Training still "works" because the rest of
    the network compensates, so nothing crashes and the loss goes down a little: the model is
    just quietly worse. Typical causes: a `.detach()` or `torch.no_grad()` left in `forward`, a
    layer defined but never used, the optimizer created before a layer was added, or a
    parameter group with `lr=0`.

    ## Example
    ```python
    def forward(self, x):
        h = self.body(x).detach()   # body never learns
        return self.head(h)
    ```

    ## Fix
    Remove the `.detach()`/`no_grad()` from the training path, delete unused layers (or freeze
    them explicitly with `requires_grad_(False)`), and build the optimizer from
    `model.parameters()` after the model is complete:
    ```python
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ```

    ## Thresholds
    None: a gradient that is `None` or exactly zero over the whole tensor, a parameter missing
    from the optimizer, or a bit-identical parameter after a step. A bias directly followed by
    BatchNorm has a mathematically zero gradient (BatchNorm subtracts the mean) and is reported
    at `info` level only, with the fix `bias=False`. When an audited script adds several loss
    calls per forward (multi-task heads), the pre-flight replays only the first one, so missing
    gradients are not reported there (parameters outside the optimizer still are).

    ## References
    * A. Karpathy, "A Recipe for Training Neural Networks" (2019): check that every layer
      learns; "use backprop to chart dependencies".
    * torcheck's "parameters should change" rule (which raises on frozen parameters; this
      check does not).
    """

    id = "BS402"
    name = "parameters-without-gradient"
    severity = Severity.ERROR
    summary = "trainable parameters get no gradient or never change"
    requires = ("experiments.gradients",)

    implied_by = ("symmetric-init", "input-independent-output")

    def run(self, trace: Trace, thresholds: Mapping[str, Any]) -> Iterable[Finding]:
        run = trace.experiments["gradients"]
        no_grad = list(run.get("no_grad") or [])
        zero = list(run.get("zero_grad") or [])
        if _partial_loss(trace):
            # the script sums several losses per forward (multi-task heads) and the audit
            # replayed the first one only: heads of the other losses get no gradient there
            no_grad, zero = [], []
        before_bn = [n for n in zero if _bias_before_batchnorm(trace, n)]
        zero = [n for n in zero if n not in before_bn]
        missing = list(run.get("not_in_optimizer") or [])
        # a bias feeding BatchNorm has a ~0 gradient: the info finding below explains it
        unchanged = [
            n for n in run.get("unchanged_after_step") or [] if not _bias_before_batchnorm(trace, n)
        ]
        before_bn += [
            n
            for n in run.get("unchanged_after_step") or []
            if _bias_before_batchnorm(trace, n) and n not in before_bn
        ]
        total = run.get("parameters", 0)
        frozen = list(run.get("frozen") or [])
        if total and len(frozen) == total:
            yield self.finding(
                f"All {total} parameter tensors have requires_grad=False: nothing will train.",
                "Unfreeze what should learn: `model.requires_grad_(True)`, or "
                "`layer.requires_grad_(True)` for the parts you fine-tune.",
                evidence={"frozen": frozen[:20]},
            )
            return
        problems = []
        if no_grad:
            problems.append(f"{len(no_grad)} get no gradient at all (`.grad is None`)")
        if zero:
            problems.append(f"{len(zero)} get an identically zero gradient")
        if missing:
            problems.append(f"{len(missing)} are not in any optimizer parameter group")
        if unchanged:
            problems.append(f"{len(unchanged)} do not change after an optimizer step")
        if unchanged and not (no_grad or zero or missing):
            lrs = sorted(
                {
                    g.get("lr")
                    for o in trace.facts.get("optimizers", [])
                    for g in o.get("param_groups", [])
                    if isinstance(g, dict) and isinstance(g.get("lr"), int | float)
                }
            )
            lr = f"lr={lrs[0]:.2g}" if lrs else "the learning rate"
            yield self.finding(
                f"{len(unchanged)} of {total - len(frozen)} trainable parameter tensors get a "
                f"gradient but do not change after an optimizer step (first: `{unchanged[0]}`): "
                f"the update ({lr} × gradient) is too small to register in their precision, "
                "or the group's learning rate is 0. They keep their initial values.",
                "Raise the learning rate of these parameters' group (Adam 3e-4 / SGD 0.01–0.1 "
                "are usual starting points):\n```python\n"
                "optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)\n```",
                evidence={
                    "unchanged_after_step": unchanged[:20],
                    "learning_rates": lrs,
                    "trainable_tensors": total - len(frozen),
                },
                layer=unchanged[0].rsplit(".", 1)[0],
            )
        elif problems:
            first = (no_grad or zero or missing or unchanged)[0]
            yield self.finding(
                "Of the trainable parameter tensors, " + "; ".join(problems) + f" (first: "
                f"`{first}`). They will keep their initial values for the whole run.",
                _fix(no_grad, zero, missing, unchanged),
                evidence={
                    "no_grad": no_grad[:20],
                    "zero_grad": zero[:20],
                    "not_in_optimizer": missing[:20],
                    "unchanged_after_step": unchanged[:20],
                    "trainable_tensors": total - len(frozen),
                    "frozen_tensors": len(frozen),
                },
                layer=first.rsplit(".", 1)[0],
            )
        if before_bn:
            yield self.finding(
                f"{len(before_bn)} bias tensor(s) feed straight into BatchNorm (first: "
                f"`{before_bn[0]}`), which subtracts the batch mean: their gradient is zero.",
                "Drop the redundant bias: `nn.Conv2d(..., bias=False)` / "
                "`nn.Linear(..., bias=False)` before a BatchNorm layer.",
                evidence={"biases": before_bn[:20]},
                layer=before_bn[0].rsplit(".", 1)[0],
                severity=Severity.INFO,
            )


def _partial_loss(trace: Trace) -> bool:
    return (
        trace.mode == "audit"
        and trace.run.get("preflight_loss") == "first_loss_call"
        and trace.run.get("training_losses_per_forward", 1) > 1
    )


def _bias_before_batchnorm(trace: Trace, param: str) -> bool:
    layer, _, leaf = param.rpartition(".")
    if leaf != "bias" or layer not in trace.layers:
        return False
    order = trace.layers[layer].get("order")
    if order is None:
        return False
    following = [
        info
        for info in trace.layers.values()
        if info.get("order") is not None and info["order"] > order
    ]
    following.sort(key=lambda info: info["order"])
    return bool(following) and following[0].get("type", "").startswith("BatchNorm")


def _fix(no_grad: list[str], zero: list[str], missing: list[str], unchanged: list[str]) -> str:
    lines = []
    if no_grad or zero:
        lines.append(
            "Find what cuts these parameters off the graph: a `.detach()`, `.data`, `.item()`, "
            "`torch.no_grad()` or a NumPy round trip in `forward`, or a layer that is defined "
            "but never called. Freeze intentionally unused parts with `requires_grad_(False)`."
        )
    if missing:
        lines.append(
            "Create the optimizer after the model is complete, from all of its parameters."
        )
    if unchanged:
        lines.append("Check the parameter groups' learning rates (`lr=0` freezes a group).")
    return "\n\n".join(lines) + (
        "\n\n```python\n"
        "optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)\n"
        "for name, p in model.named_parameters():\n"
        "    if p.requires_grad and p.grad is None:\n"
        "        print('no gradient:', name)   # after loss.backward()\n"
        "```"
    )
