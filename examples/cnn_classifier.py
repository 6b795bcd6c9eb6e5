"""Train a small CNN on a synthetic image classification data set.

A plain PyTorch training script in the style of the official tutorials: an
argparse CLI, a model class, a TensorDataset + DataLoader, a training loop and a
validation loop. It runs in a few seconds on a CPU.

The data set stands in for a folder of small RGB images: 3x16x16 uint8 pixels
in [0, 255]. Each image shows one short bar on a noisy background; its class is
the bar's orientation (0 = horizontal, 1 = diagonal, 2 = vertical,
3 = anti-diagonal), while its position and colour are random. As
torchvision's ``ToTensor()`` + ``Normalize(mean, std)`` would, the clean
pipeline scales the pixels to [0, 1] and then normalizes each channel with the
mean and standard deviation of the *training* split.

``--bug`` injects exactly one realistic bug (the default, ``none``, is correct):

  none            the clean run.
  raw-pixels      the scaling and normalization are skipped: the model is fed
                  raw 0-255 pixel values (channel means around 100, not 0).
  batch-size-one  the training set is one sample larger than a multiple of the
                  batch size, with drop_last=False, so the last batch of every
                  epoch holds a single image. BatchNorm2d does not crash on it
                  (it still has H*W values per channel) but normalizes it with
                  that one image's statistics and folds them into its running
                  statistics, right before every validation pass.
  detached-layer  a `.detach()` left in forward() after the first conv block:
                  no gradient reaches that block's Conv2d and BatchNorm2d
                  parameters, so they keep their random init. The later blocks
                  and the head still learn, so training "works", only worse.
  batch-mixing    the pooled (N, C, 1, 1) features are flattened with
                  `x.view(x.size(1), -1).t()` instead of `x.flatten(1)`. The
                  shape is right, (N, C), but each row now holds features of
                  other images in the batch, so a prediction depends on the
                  rest of its batch.
  ignores-input   a debugging line `x = torch.zeros_like(x)` left at the top of
                  forward(): the images never reach the network, its output is
                  the same for every input and accuracy stays at chance.

Example:
    python examples/cnn_classifier.py
    python examples/cnn_classifier.py --bug raw-pixels
"""

import argparse
import math
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

BUGS = ["none", "raw-pixels", "batch-size-one", "detached-layer", "batch-mixing", "ignores-input"]


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n-train", type=int, default=2048)
    parser.add_argument("--n-val", type=int, default=512)
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

NUM_CLASSES = 4
IMAGE_SIZE = 16


def make_bar_images(n, generator):
    """Return n uint8 images (n, 3, 16, 16) in [0, 255] and their labels (n,).

    Class k is a faint bar of length ~8 px and width ~2 px at angle k * 45 degrees,
    centred at a random position and drawn in a random colour on a noisy,
    slightly tinted background (like real photos, the channels have different
    means).
    """
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=generator)
    angle = labels.float() * math.pi / NUM_CLASSES
    direction = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)  # (n, 2) as (x, y)
    center = torch.empty(n, 2).uniform_(4.0, IMAGE_SIZE - 5.0, generator=generator)

    coords = torch.arange(IMAGE_SIZE, dtype=torch.float32)
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    dx = xs[None] - center[:, 0, None, None]  # (n, H, W)
    dy = ys[None] - center[:, 1, None, None]
    along = dx * direction[:, 0, None, None] + dy * direction[:, 1, None, None]
    across = -dx * direction[:, 1, None, None] + dy * direction[:, 0, None, None]
    bar = ((along.abs() <= 3.5) & (across.abs() <= 0.75)).float()  # (n, H, W)

    background = torch.tensor([110.0, 95.0, 70.0]).view(1, 3, 1, 1)
    colour = torch.empty(n, 3, 1, 1).uniform_(30.0, 90.0, generator=generator)
    noise = 45.0 * torch.randn(n, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    images = background + colour * bar[:, None] + noise
    return images.round().clamp(0, 255).to(torch.uint8), labels


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


class SmallCNN(nn.Module):
    def __init__(self, num_classes=NUM_CLASSES, channels=(16, 32, 64), bug="none"):
        super().__init__()
        self.bug = bug  # which --bug to inject in forward(), if any
        blocks = []
        in_ch = 3
        for out_ch in channels:
            blocks += [
                # No conv bias: the BatchNorm that follows has its own shift.
                nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(),
                nn.MaxPool2d(2),  # 16 -> 8 -> 4 -> 2
            ]
            in_ch = out_ch
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        # Raw logits: nn.CrossEntropyLoss applies log-softmax itself.
        self.head = nn.Linear(in_ch, num_classes)

    def forward(self, x):
        if self.bug == "ignores-input":
            # BUG: left over from debugging a shape error with a blank batch;
            # the real images never reach the network.
            x = torch.zeros_like(x)
        if self.bug == "detached-layer":
            # BUG: the first block's feature maps were once plotted with
            # `x.detach().cpu()`, and the `.detach()` stayed in the main path:
            # the graph is cut after block 1, so its Conv2d and BatchNorm2d
            # parameters never get a gradient and keep their random init.
            x = self.features[:4](x).detach()  # block 1: conv, BN, ReLU, pool
            x = self.features[4:](x)
        else:
            x = self.features(x)
        x = self.pool(x)  # (N, C, 1, 1)
        if self.bug == "batch-mixing":
            # BUG: meant "(N, C, 1, 1) -> (N, C)". view() re-reads the memory
            # as (C, N), whose rows are not images, and .t() only fixes the
            # shape: row i now mixes the features of several images.
            return self.head(x.view(x.size(1), -1).t())
        return self.head(x.flatten(1))


# ---------------------------------------------------------------------------
# Train / eval
# ---------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model, loader, loss_fn, device):
    model.eval()  # BatchNorm uses its running statistics
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
    if args.bug == "batch-size-one":
        # BUG: one extra training image and the DataLoader default
        # drop_last=False -> the last batch of every epoch has size 1.
        n_train = (args.n_train // args.batch_size) * args.batch_size + 1
        drop_last = False

    gen = torch.Generator().manual_seed(args.seed)
    images, labels = make_bar_images(n_train + args.n_val, gen)
    x_train, y_train = images[:n_train], labels[:n_train]
    x_val, y_val = images[n_train:], labels[n_train:]

    if args.bug == "raw-pixels":
        # BUG: uint8 -> float only; the model sees values in [0, 255].
        x_train, x_val = x_train.float(), x_val.float()
    else:
        # ToTensor(): scale to [0, 1]. Normalize(mean, std): per-channel
        # statistics of the training split only.
        x_train, x_val = x_train.float() / 255.0, x_val.float() / 255.0
        mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
        std = x_train.std(dim=(0, 2, 3), keepdim=True)
        x_train = (x_train - mean) / std
        x_val = (x_val - mean) / std

    train_loader = DataLoader(
        TensorDataset(x_train, y_train),
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=drop_last,
        generator=torch.Generator().manual_seed(args.seed),
    )
    val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=256)

    model = SmallCNN(bug=args.bug).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()

    print(
        f"train {len(x_train)} / val {len(x_val)} images, "
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
                # Sanity check: with 4 balanced classes the loss at init
                # should be close to ln(4).
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
