"""Static facts about a model and an optimizer, read once when babysit first sees them."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from babysit.probes.recorder import Recorder

ACTIVATIONS: dict[type[nn.Module], str] = {
    nn.ReLU: "relu",
    nn.ReLU6: "relu",
    nn.LeakyReLU: "leaky_relu",
    nn.PReLU: "leaky_relu",
    nn.RReLU: "leaky_relu",
    nn.ELU: "elu",
    nn.CELU: "elu",
    nn.SELU: "selu",
    nn.GELU: "gelu",
    nn.SiLU: "silu",
    nn.Mish: "silu",
    nn.Hardswish: "silu",
    nn.Tanh: "tanh",
    nn.Hardtanh: "tanh",
    nn.Softsign: "tanh",
    nn.Sigmoid: "sigmoid",
    nn.Hardsigmoid: "sigmoid",
    nn.LogSigmoid: "sigmoid",
    nn.Softplus: "softplus",
}

NORMALIZATION: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)

DROPOUT: tuple[type[nn.Module], ...] = (nn.modules.dropout._DropoutNd,)

BATCHNORM: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._BatchNorm,)


def activation_kind(module: nn.Module) -> str | None:
    for cls in type(module).__mro__:
        kind = ACTIVATIONS.get(cls)
        if kind:
            return kind
    return None


def is_weight_layer(module: nn.Module) -> bool:
    """Layers whose weight init sets the activation scale: Linear and convolutions."""
    if isinstance(module, nn.Embedding | nn.EmbeddingBag | nn.Bilinear):
        return False
    weight = getattr(module, "weight", None)
    return (
        isinstance(weight, nn.Parameter)
        and not isinstance(weight, nn.parameter.UninitializedParameter)
        and weight.dim() >= 2
        and isinstance(module, nn.Linear | nn.modules.conv._ConvNd)
    )


def unwrap(model: nn.Module) -> nn.Module:
    """The module whose names the user knows: look through torch.compile and DDP wrappers."""
    for _ in range(4):
        inner = getattr(model, "_orig_mod", None) or (
            model.module
            if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel)
            else None
        )
        if not isinstance(inner, nn.Module):
            return model
        model = inner
    return model


def describe_model(
    model: nn.Module, recorder: Recorder, label: str, prefix: str = ""
) -> dict[str, Any]:
    """Structure facts now; weight statistics queued for the next flush (no sync here).
    Layer names get ``prefix`` (empty for the first model) so that two models never share
    an entry in ``trace.layers``."""
    params = list(model.parameters())
    first = next(iter(params), None)
    norm_layers, dropout_layers, bn_layers, weight_layers = [], [], [], []
    for local, module in model.named_modules():
        name = prefix + local
        if isinstance(module, NORMALIZATION):
            norm_layers.append(name)
        if isinstance(module, BATCHNORM):
            bn_layers.append(name)
        if isinstance(module, DROPOUT):
            dropout_layers.append({"name": name, "p": float(getattr(module, "p", 0.0))})
        if is_weight_layer(module):
            weight_layers.append((name, module))
    module_types: dict[str, int] = {}
    for module in model.modules():
        name = type(module).__name__
        module_types[name] = module_types.get(name, 0) + 1
    facts: dict[str, Any] = {
        "label": label,
        "module_types": module_types,
        "class": type(model).__name__,
        "num_parameters": sum(p.numel() for p in params),
        "trainable_parameters": sum(p.numel() for p in params if p.requires_grad),
        "device": str(first.device) if first is not None else None,
        "dtype": str(first.dtype).replace("torch.", "") if first is not None else None,
        "normalization_layers": norm_layers,
        "batchnorm_layers": bn_layers,
        "dropout_layers": dropout_layers,
        "weight_layers": [name for name, _ in weight_layers],
        "training": model.training,
    }
    layers = recorder.trace.layers
    for name, module in weight_layers:
        weight = module.weight
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(weight)
        info = layers.setdefault(name, {"type": type(module).__name__})
        info.update({"fan_in": fan_in, "fan_out": fan_out, "weight_shape": list(weight.shape)})
        with torch.no_grad():
            w = weight.detach().float()
            rows = w.reshape(w.shape[0], -1)
            zero = w.new_zeros(())
            stats = torch.stack(
                [
                    w.std() if w.numel() > 1 else zero,
                    w.mean(),
                    w.abs().max(),
                    # 0 exactly when every output unit has the same incoming weights
                    (rows - rows[:1]).abs().amax() if rows.shape[0] > 1 else zero,
                    # 0 exactly when every input reaches a unit with the same weight
                    (rows - rows[:, :1]).abs().amax() if rows.shape[1] > 1 else zero,
                ]
            )

        def store(values: list[float], info: dict[str, Any] = info) -> None:
            info["weight_std"], info["weight_mean"], info["weight_absmax"] = values[:3]
            info["weight_row_spread"], info["weight_col_spread"] = values[3:5]

        recorder.defer(stats, store)
    return facts


def describe_optimizer(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    groups = []
    for group in optimizer.param_groups:
        entry: dict[str, Any] = {"num_params": sum(p.numel() for p in group["params"])}
        for key in ("lr", "weight_decay", "momentum", "betas", "eps", "nesterov"):
            if key in group:
                value = group[key]
                if torch.is_tensor(value):
                    value = float(value)  # once, when the optimizer is first seen
                entry[key] = list(value) if isinstance(value, tuple) else value
        groups.append(entry)
    return {"class": type(optimizer).__name__, "param_groups": groups}
