"""Train a small MLP classifier on a synthetic tabular data set.

A plain PyTorch training script in the style of the official tutorials: an
argparse CLI, a model class, a TensorDataset + DataLoader, a training loop and a
validation loop. It runs in a few seconds on a CPU.

The data imitates an unprocessed tabular export: 20 numeric columns whose raw
scales range from ~0.001 (ratios) to ~10,000 (incomes), and 10 classes, each a
mixture of a few Gaussian clusters. The clean pipeline standardizes every column
with the mean and standard deviation of the *training* split before training.

``--bug`` injects exactly one realistic bug (the default, ``none``, is correct):

  none                    the clean run.
  overconfident-init      the classifier head is re-initialised with weights of
                          std sqrt(fan_in) ~= 11.3 (a typo for 1/sqrt(fan_in)),
                          so the logits are huge and the first-step loss is far
                          above ln(10) ~= 2.30 (confidently wrong at init).
  deep-tiny-init          the MLP becomes a deep plain net (8 hidden Linear+ReLU
                          layers, no normalization) whose Linear weights are all
                          drawn from N(0, 0.01^2) with zero biases; activations
                          shrink by ~12x per layer and vanish with depth, and the
                          net barely trains.
  raw-features            the standardization step is skipped, so the model sees
                          the raw columns (values in the tens of thousands next
                          to values around 0.001).
  batchnorm-trailing-one  turns on --batchnorm and makes the training set one
                          sample larger than a multiple of the batch size, with
                          drop_last=False; the last batch of every epoch holds a
                          single sample, and BatchNorm1d raises
                          "ValueError: Expected more than 1 value per channel
                          when training" at the end of the first epoch.
  softmax-before-loss     the model ends with nn.Softmax(dim=1), but the loss is
                          still nn.CrossEntropyLoss, which applies log-softmax
                          itself and expects raw logits. The loss at init still
                          looks right (~ln(10)), but it can never get below
                          ln(1 + 9/e) ~= 1.46, and the gradients are damped.
  zero-init               every Linear weight and bias is initialised to zero.
                          All hidden units compute the same thing (zero), get
                          the same (zero) gradient and stay identical: only the
                          head's bias learns, and accuracy stays at chance.
  tanh-huge-init          the hidden nonlinearity is nn.Tanh and the hidden
                          Linear weights are drawn from N(0, 1) (std=1.0 instead
                          of ~1/sqrt(fan_in)), so at init about half of the
                          tanh inputs (two thirds in layers 2 and 3) are beyond
                          +-5: those units are saturated and pass almost no
                          gradient.

Example:
    python examples/mlp_classifier.py
    python examples/mlp_classifier.py --bug overconfident-init
"""

import argparse
import math
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

BUGS = [
    "none",
    "overconfident-init",
    "deep-tiny-init",
    "raw-features",
    "batchnorm-trailing-one",
    "softmax-before-loss",
    "zero-init",
    "tanh-huge-init",
]


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n-train", type=int, default=4096)
    parser.add_argument("--n-val", type=int, default=1024)
    parser.add_argument("--hidden", type=int, default=128, help="width of the hidden layers")
    parser.add_argument("--n-layers", type=int, default=3, help="number of hidden layers")
    parser.add_argument(
        "--batchnorm", action="store_true", help="add BatchNorm1d after each hidden Linear"
    )
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

NUM_FEATURES = 20
NUM_CLASSES = 10
CLUSTERS_PER_CLASS = 3


def make_tabular_data(n, generator):
    """Return raw features (n, 20) float32 and integer labels (n,).

    Each class is a mixture of a few Gaussian clusters in a latent space, so the
    classes are learnable but not linearly separable. The latent values are then
    mapped to "raw" units the way a real export would store them: every column
    gets its own scale (0.001 .. 10,000) and a positive offset.
    """
    # The data-generating process is fixed (seed 1234) so that train and val
    # come from the same distribution; `generator` only drives the sampling.
    world = torch.Generator().manual_seed(1234)
    centers = 1.5 * torch.randn(NUM_CLASSES * CLUSTERS_PER_CLASS, NUM_FEATURES, generator=world)
    # Column scales spread log-uniformly over 7 orders of magnitude.
    scales = 10.0 ** torch.empty(NUM_FEATURES).uniform_(-3.0, 4.0, generator=world)
    offsets = scales * torch.empty(NUM_FEATURES).uniform_(2.0, 6.0, generator=world)

    cluster = torch.randint(0, NUM_CLASSES * CLUSTERS_PER_CLASS, (n,), generator=generator)
    labels = cluster % NUM_CLASSES
    latent = centers[cluster] + torch.randn(n, NUM_FEATURES, generator=generator)
    raw = latent * scales + offsets
    return raw.float(), labels


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


class MLP(nn.Module):
    def __init__(
        self,
        in_features,
        hidden,
        n_layers,
        num_classes,
        batchnorm=False,
        activation=nn.ReLU,
        softmax_output=False,
    ):
        super().__init__()
        layers = []
        width = in_features
        for _ in range(n_layers):
            layers.append(nn.Linear(width, hidden))
            if batchnorm:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(activation())
            width = hidden
        self.body = nn.Sequential(*layers)
        if softmax_output:
            # BUG: "a classifier outputs probabilities", so the model ends with
            # a softmax. But nn.CrossEntropyLoss applies log-softmax itself and
            # expects raw logits: it now computes log_softmax(softmax(z)).
            self.head = nn.Sequential(nn.Linear(width, num_classes), nn.Softmax(dim=1))
        else:
            # Raw logits: nn.CrossEntropyLoss applies log-softmax itself.
            self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.body(x))


# ---------------------------------------------------------------------------
# Train / eval
# ---------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model, loader, loss_fn, device):
    model.eval()  # BatchNorm uses running stats, dropout is off
    total_loss, correct, count = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        total_loss += loss_fn(logits, y).item() * y.numel()
        correct += (logits.argmax(dim=1) == y).sum().item()
        count += y.numel()
    model.train()
    return total_loss / count, correct / count


def main():
    args = parse_args()
    torch.manual_seed(args.seed)
    device = torch.device(args.device)

    n_train = args.n_train
    drop_last = True  # never hand BatchNorm a tiny trailing batch
    if args.bug == "batchnorm-trailing-one":
        # BUG: one extra training sample and the DataLoader default
        # drop_last=False -> the last batch of every epoch has size 1.
        args.batchnorm = True
        n_train = (args.n_train // args.batch_size) * args.batch_size + 1
        drop_last = False

    gen = torch.Generator().manual_seed(args.seed)
    x_all, y_all = make_tabular_data(n_train + args.n_val, gen)
    x_train, y_train = x_all[:n_train], y_all[:n_train]
    x_val, y_val = x_all[n_train:], y_all[n_train:]

    if args.bug != "raw-features":
        # Standardize each column to zero mean / unit variance, using statistics
        # of the training split only (the val split must not leak into them).
        mean = x_train.mean(dim=0)
        std = x_train.std(dim=0)
        x_train = (x_train - mean) / std
        x_val = (x_val - mean) / std
    # else BUG: the raw columns (scales from ~0.001 to ~10,000) go straight in.

    train_loader = DataLoader(
        TensorDataset(x_train, y_train),
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=drop_last,
        generator=torch.Generator().manual_seed(args.seed),
    )
    val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=256)

    n_layers = args.n_layers
    if args.bug == "deep-tiny-init":
        n_layers = 8  # a deep plain net, no normalization layers
    model = MLP(
        NUM_FEATURES,
        args.hidden,
        n_layers,
        NUM_CLASSES,
        batchnorm=args.batchnorm,
        activation=nn.Tanh if args.bug == "tanh-huge-init" else nn.ReLU,
        softmax_output=args.bug == "softmax-before-loss",
    )

    if args.bug == "overconfident-init":
        # BUG: meant LeCun init, std = 1/sqrt(fan_in) ~= 0.09, but wrote
        # sqrt(fan_in) ~= 11.3 -> huge logits, the model starts out
        # confidently wrong and the first loss is several times ln(10).
        fan_in = model.head.in_features
        nn.init.normal_(model.head.weight, std=math.sqrt(fan_in))
    elif args.bug == "deep-tiny-init":
        # BUG: a "small" fixed init. Each layer multiplies the activation scale
        # by ~0.01 * sqrt(128 / 2) ~= 0.08, so after 8 layers nothing is left.
        for m in model.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
    elif args.bug == "zero-init":
        # BUG: "start from a neutral model, like logistic regression". With
        # every weight at zero all hidden units in a layer are identical and
        # get identical gradients (here exactly zero: ReLU(0) = 0 and the next
        # weight is 0), so the symmetry is never broken and nothing but the
        # head's bias can learn.
        for m in model.modules():
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.weight)
                nn.init.zeros_(m.bias)
    elif args.bug == "tanh-huge-init":
        # BUG: "weights ~ N(0, 1)", copied from a textbook formula that was
        # meant to be scaled by 1/sqrt(fan_in). With fan_in = 20 and 128 the
        # tanh inputs have a std of ~4.5 and ~10, so many of them (two thirds
        # after the first layer) sit on the flat tails of tanh (|x| >= 5, where
        # tanh'(x) < 2e-4).
        for m in model.body.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=1.0)

    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()

    print(
        f"train {len(x_train)} / val {len(x_val)} samples, "
        f"{sum(p.numel() for p in model.parameters())} parameters, device {device}"
    )
    start = time.time()
    step = 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        running_loss, seen = 0.0, 0
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            logits = model(x)
            loss = loss_fn(logits, y)

            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

            if step == 0:
                # Sanity check: with 10 balanced classes the loss at init
                # should be close to ln(10).
                print(
                    f"step 0 loss {loss.item():.4f} (ln({NUM_CLASSES}) = "
                    f"{math.log(NUM_CLASSES):.4f})"
                )
            running_loss += loss.item() * y.numel()
            seen += y.numel()
            step += 1

        val_loss, val_acc = evaluate(model, val_loader, loss_fn, device)
        print(
            f"epoch {epoch:2d} | train loss {running_loss / seen:.4f} | "
            f"val loss {val_loss:.4f} | val acc {val_acc:.4f}"
        )
    print(f"done in {time.time() - start:.1f}s")


if __name__ == "__main__":
    main()
