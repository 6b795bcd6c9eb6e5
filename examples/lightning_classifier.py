"""Train an MLP classifier with PyTorch Lightning, validating after every epoch.

A plain Lightning script of the kind the Lightning docs start from: a
``LightningModule`` with ``training_step``, ``validation_step`` and
``configure_optimizers``, two DataLoaders, and ``Trainer.fit``. It runs in a few
seconds on one CPU thread (most of it is ``import lightning``).

The data are synthetic but learnable: 20 standardized features, 10 balanced
classes, each class a mixture of a few Gaussian clusters, with 10 % of the labels
flipped at random (annotation noise), so a model that memorizes the training
set pays for it on the validation set.

The clean model is a 2 x 128 ReLU MLP with Dropout(0.1), trained with AdamW
(lr 1e-3, weight decay 1e-2) on 2048 samples for 5 epochs.

``--bug`` injects exactly one realistic bug (the default, ``none``, is correct):

  none          the clean run.
  lr-too-high   AdamW with lr 1.0 (a typo for 1e-3): the first steps throw the
                weights far away, the ReLUs die and the loss jumps far above its
                starting value and stays there.
  overfit       256 training samples, a 3 x 512 MLP without dropout or weight
                decay, trained for 40 epochs: the training loss goes to ~0 while
                the validation loss climbs far above its minimum.

Works with ``lightning`` (``import lightning.pytorch``) and with the older
``pytorch_lightning`` package.

Example:
    python examples/lightning_classifier.py
    python examples/lightning_classifier.py --bug lr-too-high
    babysit audit examples/lightning_classifier.py -- --bug overfit
"""

import argparse
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

try:
    import lightning.pytorch as pl
except ImportError:  # the older package name
    import pytorch_lightning as pl

BUGS = ["none", "lr-too-high", "overfit"]

NUM_FEATURES = 20
NUM_CLASSES = 10
CLUSTERS_PER_CLASS = 3
LABEL_NOISE = 0.1


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=None, help="default: 5 (overfit: 40)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=2048)
    parser.add_argument("--n-val", type=int, default=1024)
    parser.add_argument(
        "--strategy", default="auto", help='Lightning strategy, e.g. "ddp" with --devices 2'
    )
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument(
        "--bug",
        choices=BUGS,
        default="none",
        help="inject one realistic bug, see the list above (default: none)",
    )
    return parser.parse_args()


def make_data(n, generator):
    """Standardizable features (n, 20) and noisy labels (n,) from a fixed mixture."""
    world = torch.Generator().manual_seed(1234)  # the same distribution for every split
    centers = 2.0 * torch.randn(NUM_CLASSES * CLUSTERS_PER_CLASS, NUM_FEATURES, generator=world)
    cluster = torch.randint(0, NUM_CLASSES * CLUSTERS_PER_CLASS, (n,), generator=generator)
    labels = cluster % NUM_CLASSES
    flip = torch.rand(n, generator=generator) < LABEL_NOISE
    labels[flip] = torch.randint(0, NUM_CLASSES, (int(flip.sum()),), generator=generator)
    x = centers[cluster] + torch.randn(n, NUM_FEATURES, generator=generator)
    return x, labels


class Classifier(pl.LightningModule):
    def __init__(self, hidden=128, n_layers=2, dropout=0.1, lr=1e-3, weight_decay=1e-2):
        super().__init__()
        self.save_hyperparameters()
        layers, width = [], NUM_FEATURES
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = hidden
        layers.append(nn.Linear(width, NUM_CLASSES))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )


class PrintMetrics(pl.Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        m = trainer.callback_metrics  # validation ran at the end of this training epoch
        print(
            f"epoch {trainer.current_epoch + 1:2d} | train loss {m['train_loss'].item():.4f} | "
            f"val loss {m['val_loss'].item():.4f} | val acc {m['val_acc'].item():.4f}"
        )


def main():
    args = parse_args()
    pl.seed_everything(args.seed, verbose=False)
    torch.set_num_threads(1)  # a tiny model: intra-op threads only add overhead

    n_train, epochs = args.n_train, args.epochs or 5
    model_args = {}
    if args.bug == "lr-too-high":
        # BUG: meant 1e-3, typed 1.0
        model_args["lr"] = 1.0
    elif args.bug == "overfit":
        # BUG: a big, unregularized model on a small data set, trained for a long time
        n_train, epochs = 256, args.epochs or 40
        model_args.update(hidden=512, n_layers=3, dropout=0.0, weight_decay=0.0)

    gen = torch.Generator().manual_seed(args.seed)
    x, y = make_data(n_train + args.n_val, gen)
    mean, std = x[:n_train].mean(0), x[:n_train].std(0)
    x = (x - mean) / std  # training-split statistics only
    train = DataLoader(
        TensorDataset(x[:n_train], y[:n_train]),
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(args.seed),
    )
    val = DataLoader(TensorDataset(x[n_train:], y[n_train:]), batch_size=256)

    model = Classifier(**model_args)
    print(f"step 0: expect a loss near ln({NUM_CLASSES}) = {math.log(NUM_CLASSES):.3f}")
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=args.devices,
        strategy=args.strategy,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[PrintMetrics()],
    )
    trainer.fit(model, train, val)


if __name__ == "__main__":
    main()
