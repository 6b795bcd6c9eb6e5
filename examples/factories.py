"""Model factories for `babysit check MODULE:FACTORY` and the pytest plugin.

A factory takes no arguments and returns what one training step needs: the model, one
batch, the loss function and (optionally) the optimizer. `babysit check` runs the
pre-flight checks on it and exits 1 when something is wrong, so the model can be gated in CI
without running the training script:

    babysit check examples/factories.py:make_model          # exits 0
    babysit check examples/factories.py:make_broken_model   # exits 1: softmax before the loss

The data is a small synthetic classification set (10 classes, 20 standardized features).
"""

import torch
from torch import nn

NUM_FEATURES = 20
NUM_CLASSES = 10


def make_batch(n=64, seed=0):
    """A batch of n examples: Gaussian clusters around one center per class."""
    generator = torch.Generator().manual_seed(seed)
    centers = torch.randn(NUM_CLASSES, NUM_FEATURES, generator=generator)
    targets = torch.randint(0, NUM_CLASSES, (n,), generator=generator)
    inputs = centers[targets] + 0.5 * torch.randn(n, NUM_FEATURES, generator=generator)
    inputs = (inputs - inputs.mean(0)) / inputs.std(0)
    return inputs, targets


class Classifier(nn.Module):
    def __init__(self, hidden=64, softmax_output=False):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(NUM_FEATURES, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        head = nn.Linear(hidden, NUM_CLASSES)
        # BUG (make_broken_model): nn.CrossEntropyLoss applies log-softmax itself and expects
        # raw logits; with a softmax in front the loss can never get near zero.
        self.head = nn.Sequential(head, nn.Softmax(dim=1)) if softmax_output else head

    def forward(self, x):
        return self.head(self.body(x))


def make_model():
    """A correct classifier: raw logits into nn.CrossEntropyLoss, AdamW."""
    model = Classifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    return model, make_batch(), nn.CrossEntropyLoss(), optimizer


def make_broken_model():
    """The same classifier ending in nn.Softmax: it cannot overfit even 8 examples."""
    model = Classifier(softmax_output=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    return {
        "model": model,
        "batch": make_batch(),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": optimizer,
    }
