"""The PyTorch vocabulary of the static rules: qualified names and naming conventions."""

from __future__ import annotations

import re

F = "torch.nn.functional."

#: Functions whose output is a probability (or log-probability) distribution or a sigmoid.
ACTIVATION_FUNCTIONS = {
    "torch.softmax": "softmax",
    F + "softmax": "softmax",
    "torch.special.softmax": "softmax",
    "torch.Tensor.softmax": "softmax",
    "torch.log_softmax": "log_softmax",
    F + "log_softmax": "log_softmax",
    "torch.special.log_softmax": "log_softmax",
    "torch.Tensor.log_softmax": "log_softmax",
    "torch.sigmoid": "sigmoid",
    F + "sigmoid": "sigmoid",
    "torch.special.expit": "sigmoid",
    "torch.Tensor.sigmoid": "sigmoid",
}
#: Tensor methods with the same meaning (``logits.softmax(dim=1)``).
ACTIVATION_METHODS = {"softmax": "softmax", "log_softmax": "log_softmax", "sigmoid": "sigmoid"}
#: Modules whose output is one of the above.
ACTIVATION_MODULES = {
    "torch.nn.Softmax": "softmax",
    "torch.nn.Softmax2d": "softmax",
    "torch.nn.LogSoftmax": "log_softmax",
    "torch.nn.Sigmoid": "sigmoid",
}
#: Methods that keep the values (and so the activation) of a tensor.
SHAPE_METHODS = frozenset(
    {
        "squeeze",
        "unsqueeze",
        "view",
        "reshape",
        "flatten",
        "float",
        "double",
        "half",
        "to",
        "contiguous",
        "permute",
        "transpose",
        "clone",
        "cpu",
        "cuda",
        "type",
        "view_as",
        "reshape_as",
    }
)

#: Loss functions that matter to the activation rules; every other F.*loss is "other".
FUNCTIONAL_LOSSES = {
    F + "cross_entropy": "cross_entropy",
    F + "nll_loss": "nll",
    F + "binary_cross_entropy": "bce",
    F + "binary_cross_entropy_with_logits": "bce_logits",
}
LOSS_MODULES = {
    "torch.nn.CrossEntropyLoss": "cross_entropy",
    "torch.nn.NLLLoss": "nll",
    "torch.nn.BCELoss": "bce",
    "torch.nn.BCEWithLogitsLoss": "bce_logits",
}
_OTHER_FUNCTIONAL_LOSS = re.compile(
    r"^torch\.nn\.functional\.(\w+_loss|kl_div|linear_cross_entropy)$"
)


def functional_loss_kind(qualname: str | None) -> str | None:
    if qualname is None:
        return None
    if qualname in FUNCTIONAL_LOSSES:
        return FUNCTIONAL_LOSSES[qualname]
    return "other" if _OTHER_FUNCTIONAL_LOSS.match(qualname) else None


def loss_module_kind(qualname: str | None) -> str | None:
    if qualname is None:
        return None
    if qualname in LOSS_MODULES:
        return LOSS_MODULES[qualname]
    if qualname.startswith("torch.nn.") and qualname.endswith("Loss"):
        return "other"
    return None


def is_optimizer_class(qualname: str | None) -> bool:
    if not qualname or not qualname.startswith("torch.optim."):
        return False
    last = qualname.rsplit(".", 1)[-1]
    return "lr_scheduler" not in qualname and "swa_utils" not in qualname and last[:1].isupper()


GRAD_SCALERS = {"torch.cuda.amp.GradScaler", "torch.amp.GradScaler", "torch.cpu.amp.GradScaler"}
DATALOADERS = {"torch.utils.data.DataLoader"}
MAP_DATASETS = {
    "torch.utils.data.TensorDataset",
    "torch.utils.data.Subset",
    "torch.utils.data.ConcatDataset",
    "torch.utils.data.StackDataset",
}
RANDOM_SPLIT = "torch.utils.data.random_split"
NO_GRAD = {"torch.no_grad", "torch.inference_mode"}
SET_GRAD_ENABLED = "torch.set_grad_enabled"
LIGHTNING_MODULES = {"lightning.LightningModule", "lightning.pytorch.LightningModule"}

#: Names that say "optimizer" (``opt``, ``optimizer_g``, ``d_optim``), but not schedulers.
_OPTIMIZER_NAME = re.compile(r"(^|_)(opt|optim|optimizer|optimiser|optimizers)(_|\d|$)", re.I)
_MODEL_NAME = re.compile(
    r"^(model|net|network|classifier|encoder|decoder|generator|discriminator|backbone|"
    r"student|autoencoder|vae|cnn|mlp|rnn|lstm|gru|transformer|resnet|unet|"
    r"g|d|net_?g|net_?d|policy|critic|actor)(_\w+|\d+)?$|_(model|net|network)$",
    re.I,
)


def word_tokens(name: str) -> set[str]:
    """``val_loader`` -> {val, loader}; ``testLoader`` -> {test, loader}."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return {t for t in re.split(r"[^A-Za-z]+", spaced.lower()) if t}


EVAL_WORDS = frozenset({"val", "valid", "validation", "test", "testing", "eval", "evaluation"})
TRAIN_WORDS = frozenset({"train", "training", "trn"})


def says_eval(name: str) -> bool:
    tokens = word_tokens(name)
    return bool(tokens & EVAL_WORDS) and not tokens & TRAIN_WORDS


def says_train(name: str) -> bool:
    tokens = word_tokens(name)
    return bool(tokens & TRAIN_WORDS) and not tokens & EVAL_WORDS


def says_optimizer(name: str) -> bool:
    return bool(_OPTIMIZER_NAME.search(name)) and "sched" not in name.lower()


def says_model(name: str) -> bool:
    return bool(_MODEL_NAME.search(name))


#: Callee names whose first argument they iterate (``enumerate(loader)``, ``tqdm(loader)``).
ITERATION_WRAPPERS = frozenset({"enumerate", "tqdm", "iter", "track", "zip", "islice"})
