"""Train an MLP classifier for several epochs, validating after every epoch.

A plain PyTorch training script of the kind most projects start from: an
argparse CLI, a model class, a training DataLoader and a validation DataLoader,
and an epoch loop that trains (``model.train()``, ``optimizer.zero_grad()``,
``loss.backward()``, ``optimizer.step()``) and then validates (``model.eval()``
under ``torch.no_grad()``), printing train/val loss and accuracy per epoch. It
runs in a few seconds on one CPU thread.

The data are synthetic but learnable, like a small real data set: 32 standardized
features, 10 balanced classes, each class a mixture of a few Gaussian clusters
that overlap with the other classes, and 10 % of the labels flipped at random
(annotation noise). No model gets near 100 % (the clean run reaches ~82 %
validation accuracy), and a model that memorizes the training set pays for it on
the validation set.

The clean model is a 2 x 128 ReLU MLP with BatchNorm1d and Dropout(0.2), trained
with SGD (lr 0.05, momentum 0.9, weight decay 5e-4, batch 256) on 16,384 samples
for 12 epochs; it does not overfit within those epochs.

``--bug`` injects exactly one realistic bug (the default, ``none``, is correct):

  none                 the clean run.
  overfit              256 training samples, a 3 x 512 MLP without dropout,
                       BatchNorm or weight decay, trained with Adam for 40
                       epochs: the training loss goes to ~0 while the
                       validation loss climbs far above its minimum (reached in
                       the first few epochs).
  no-eval-mode         validation runs under torch.no_grad() but without
                       model.eval(): Dropout stays on and BatchNorm normalizes
                       each validation batch with its own statistics (and
                       updates its running statistics with validation data).
  no-zero-grad         optimizer.zero_grad() is never called, so every
                       backward() adds to the gradients of all earlier steps.
  lr-too-high          SGD with lr 2e1 = 20 (a typo for 2e-1): the loss
                       explodes within the first epoch.
  lr-too-low           SGD with lr 1e-7: the weights barely move and the loss
                       stays where it started.
  shuffled-val-labels  the validation features are shuffled (to "mix the
                       batches") but their labels are not, so the validation
                       labels no longer belong to their samples: validation
                       accuracy stays at chance (10 %) while training is fine.
  no-validation        the validation pass was commented out: the script trains
                       all epochs and never looks at held-out data.
  underfit             weight decay 1.0 (a typo for 1e-4): the weights are
                       pulled to zero every step and the training loss stays
                       near chance, ln(10) = 2.30.

Example:
    python examples/train_val_classifier.py
    python examples/train_val_classifier.py --bug overfit
"""

import argparse
import math
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

BUGS = [
    "none",
    "overfit",
    "no-eval-mode",
    "no-zero-grad",
    "lr-too-high",
    "lr-too-low",
    "shuffled-val-labels",
    "no-validation",
    "underfit",
]


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="default: 12 (40 with --bug overfit)"
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n-train", type=int, default=16384)
    parser.add_argument("--n-val", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=128, help="width of the hidden layers")
    parser.add_argument("--n-layers", type=int, default=2, help="number of hidden layers")
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument(
        "--bug",
        choices=BUGS,
        default="none",
        help="inject one realistic bug, see the list above (default: none)",
    )
    return parser.parse_args()


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

NUM_FEATURES = 32
NUM_CLASSES = 10
CLUSTERS_PER_CLASS = 4
LABEL_NOISE = 0.1


def make_data(n, generator):
    """Return standardized features (n, 32) float32 and integer labels (n,).

    Each class is a mixture of a few Gaussian clusters whose centers are close
    enough that the classes overlap, so the task is learnable but not
    separable; on top of that a fraction of the labels is replaced by a random
    class, as in a hand-labelled data set.
    """
    # The data-generating process is fixed (seed 1234) so that train and val
    # come from the same distribution; `generator` only drives the sampling.
    world = torch.Generator().manual_seed(1234)
    centers = 0.75 * torch.randn(NUM_CLASSES * CLUSTERS_PER_CLASS, NUM_FEATURES, generator=world)

    cluster = torch.randint(0, NUM_CLASSES * CLUSTERS_PER_CLASS, (n,), generator=generator)
    labels = cluster % NUM_CLASSES
    x = centers[cluster] + torch.randn(n, NUM_FEATURES, generator=generator)
    noisy = torch.rand(n, generator=generator) < LABEL_NOISE
    labels = torch.where(noisy, torch.randint(0, NUM_CLASSES, (n,), generator=generator), labels)
    return x.float(), labels


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


class MLP(nn.Module):
    def __init__(self, in_features, hidden, n_layers, num_classes, batchnorm=True, dropout=0.2):
        super().__init__()
        layers = []
        width = in_features
        for _ in range(n_layers):
            layers.append(nn.Linear(width, hidden))
            if batchnorm:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)  # raw logits for CrossEntropyLoss

    def forward(self, x):
        return self.head(self.body(x))


# ---------------------------------------------------------------------------
# Train / eval
# ---------------------------------------------------------------------------


def train_one_epoch(model, loader, loss_fn, optimizer, device, zero_grad=True):
    model.train()
    total_loss, correct, count = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss = loss_fn(logits, y)

        if zero_grad:
            optimizer.zero_grad()
        # else BUG: the gradients of every earlier step are still in .grad and
        # backward() adds this step's on top.
        loss.backward()
        optimizer.step()

        total_loss += loss.item() * y.numel()
        correct += (logits.argmax(dim=1) == y).sum().item()
        count += y.numel()
    return total_loss / count, correct / count


@torch.no_grad()
def evaluate(model, loader, loss_fn, device, eval_mode=True):
    if eval_mode:
        model.eval()  # dropout off, BatchNorm uses its running statistics
    # else BUG: still in training mode from the last epoch: dropout is on and
    # BatchNorm normalizes with (and updates its running stats from) val batches.
    total_loss, correct, count = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        total_loss += loss_fn(logits, y).item() * y.numel()
        correct += (logits.argmax(dim=1) == y).sum().item()
        count += y.numel()
    return total_loss / count, correct / count


def main():
    args = parse_args()
    bug = args.bug
    torch.manual_seed(args.seed)
    device = torch.device(args.device)

    batchnorm, dropout = True, args.dropout
    optimizer_name = "sgd"
    if bug == "overfit":
        # BUG: a big model, no regularization at all, a tiny data set and many
        # epochs, with no early stopping.
        args.n_train = 256
        args.hidden, args.n_layers = 512, 3
        batchnorm, dropout = False, 0.0
        args.weight_decay = 0.0
        if args.epochs is None:
            args.epochs = 40
        args.batch_size = 32
        optimizer_name, args.lr = "adam", 1e-3
    elif bug == "lr-too-high":
        args.lr = 2e1  # BUG: meant 2e-1, the minus sign got lost
    elif bug == "lr-too-low":
        args.lr = 1e-7  # BUG: meant 1e-1 (or a scheduler's final lr used from the start)
    elif bug == "underfit":
        args.weight_decay = 1.0  # BUG: meant 1e-4

    if args.epochs is None:
        args.epochs = 12

    gen = torch.Generator().manual_seed(args.seed)
    x_all, y_all = make_data(args.n_train + args.n_val, gen)
    x_train, y_train = x_all[: args.n_train], y_all[: args.n_train]
    x_val, y_val = x_all[args.n_train :], y_all[args.n_train :]
    if bug == "shuffled-val-labels":
        # BUG: shuffle the validation set "so its batches are mixed", but the
        # permutation is applied to the features only: each validation label
        # now belongs to some other sample.
        x_val = x_val[torch.randperm(len(x_val), generator=gen)]

    train_loader = DataLoader(
        TensorDataset(x_train, y_train),
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,  # never hand BatchNorm a tiny trailing batch
        generator=torch.Generator().manual_seed(args.seed),
    )
    val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=512)

    model = MLP(
        NUM_FEATURES, args.hidden, args.n_layers, NUM_CLASSES, batchnorm=batchnorm, dropout=dropout
    ).to(device)
    if optimizer_name == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    else:
        optimizer = torch.optim.SGD(
            model.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.weight_decay
        )
    loss_fn = nn.CrossEntropyLoss()

    print(
        f"train {len(x_train)} / val {len(x_val)} samples, "
        f"{sum(p.numel() for p in model.parameters())} parameters, "
        f"{optimizer_name} lr {args.lr:g}, device {device}"
    )
    chance_loss = math.log(NUM_CLASSES)
    print(f"chance: loss ln({NUM_CLASSES}) = {chance_loss:.4f}, acc {1 / NUM_CLASSES:.2f}")
    start = time.time()
    best_val = math.inf
    for epoch in range(1, args.epochs + 1):
        train_loss, train_acc = train_one_epoch(
            model, train_loader, loss_fn, optimizer, device, zero_grad=bug != "no-zero-grad"
        )
        line = f"epoch {epoch:2d} | train loss {train_loss:.4f} acc {train_acc:.3f}"
        if bug != "no-validation":
            val_loss, val_acc = evaluate(
                model, val_loader, loss_fn, device, eval_mode=bug != "no-eval-mode"
            )
            best_val = min(best_val, val_loss)
            line += f" | val loss {val_loss:.4f} acc {val_acc:.3f}"
        # else BUG: the validation call was commented out "to make epochs faster".
        print(line)
    if best_val < math.inf:
        print(f"best val loss {best_val:.4f}")
    print(f"done in {time.time() - start:.1f}s")


if __name__ == "__main__":
    main()
