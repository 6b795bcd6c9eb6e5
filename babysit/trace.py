"""The Trace: everything babysit recorded about a run, as plain JSON-able data.

Probes and experiments write it; checks only read it. Because every section is plain data
(dicts, lists, numbers, strings), a trace saved with :meth:`Trace.save` can be judged again
later with ``babysit report trace.json`` and gives the same findings.

Sections
--------
facts        model structure, optimizers, loss kind, run mode (dict)
steps        per-step series: step, loss, lr, batch_size, training (list of dicts)
losses       loss-function calls with the statistics chance level is derived from (list)
layers       per-layer facts (type, call order, fan-in, weight std, next nonlinearity) and
             per-sampled-step activation statistics (dict name -> dict)
inputs       per-batch input statistics (list)
batchnorm    per-BatchNorm-layer batch sizes seen in training mode (dict name -> dict)
loaders      DataLoaders iterated during the run (list)
metrics      values the user logged with ``sitter.log`` (list)
experiments  results of active experiments run on copies (dict)
errors       internal errors inside babysit's probes (list)
notes        things babysit wants the reader to know about the recording (list of str)
run          how the run ended: steps, stop reason, script exit code (dict)
evals        validation passes: step, epoch, mean validation loss, source (list)
epochs       training epochs: start/end step, mean training loss (list)
gradients    per sampled optimizer step, per layer: gradient norm, mean |g|, weight norm and
             update norm (list)
events       one-off observations: eval-mode problems, gradients not reset, non-finite
             values (list)
sources      source files for the static rules (BS9xx): {"path" (as given, relative), "text"}
             (list)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

TRACE_SCHEMA = 1


@dataclass
class Trace:
    mode: str = "check"
    target: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    losses: list[dict[str, Any]] = field(default_factory=list)
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    batchnorm: dict[str, dict[str, Any]] = field(default_factory=dict)
    loaders: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    experiments: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    run: dict[str, Any] = field(default_factory=dict)
    evals: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    gradients: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)

    SECTIONS = (
        "facts",
        "steps",
        "losses",
        "layers",
        "inputs",
        "batchnorm",
        "loaders",
        "metrics",
        "experiments",
        "errors",
        "notes",
        "run",
        "evals",
        "epochs",
        "gradients",
        "events",
        "sources",
    )

    def has(self, section: str) -> bool:
        """True when ``section`` (or a dotted path such as ``facts.model``) holds data."""
        head, _, rest = section.partition(".")
        value: Any = getattr(self, head, None)
        for key in filter(None, rest.split(".")):
            value = value.get(key) if isinstance(value, dict) else None
        return bool(value)

    # -- convenience views used by several checks -------------------------------------------
    def training_losses(self) -> list[dict[str, Any]]:
        return [event for event in self.losses if event.get("training")]

    def layer_order(self) -> list[str]:
        """Layer names in the order the first recorded forward pass called them."""
        ordered = [(info.get("order"), name) for name, info in self.layers.items()]
        return [name for order, name in sorted(o for o in ordered if o[0] is not None)]

    def has_normalization(self) -> bool:
        return bool(self.facts.get("model", {}).get("normalization_layers"))

    # -- serialization ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = {"trace_schema": TRACE_SCHEMA, "mode": self.mode, "target": self.target}
        for name in self.SECTIONS:
            data[name] = _clean(getattr(self, name))
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trace:
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        schema = data.get("trace_schema")
        if schema != TRACE_SCHEMA:
            raise ValueError(
                f"trace schema {schema!r} is not supported (this babysit reads schema "
                f"{TRACE_SCHEMA}); re-record the trace with this version"
            )
        known = {f.name for f in fields(cls)}
        kwargs = {k: _restore(v) for k, v in data.items() if k in known}
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> Trace:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _clean(value: Any) -> Any:
    """JSON has no NaN/Inf: store them as tagged strings so a round trip restores them."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    return value


def _restore(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return _NONFINITE[value["__float__"]]
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value
