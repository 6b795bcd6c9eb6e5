"""Iteration-based training (no epochs): eval every N steps inside the training loop with
`model.eval()` ... `model.train()`, an EMA copy kept in eval mode, and a checkpoint."""

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def infinite(loader):
    while True:
        yield from loader


model = nn.Sequential(
    nn.Conv1d(1, 8, 3), nn.BatchNorm1d(8), nn.ReLU(), nn.Flatten(), nn.LazyLinear(4)
)
ema_model = copy.deepcopy(model).eval()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
train_data = TensorDataset(torch.randn(800, 1, 32), torch.randint(0, 4, (800,)))
val_data = TensorDataset(torch.randn(200, 1, 32), torch.randint(0, 4, (200,)))
train_loader = DataLoader(train_data, batch_size=32, shuffle=True, drop_last=True)
val_loader = DataLoader(val_data, batch_size=100)

batches = infinite(train_loader)
model.train()
for it in range(1, 5001):
    x, y = next(batches)
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        for ema_p, p in zip(ema_model.parameters(), model.parameters()):
            ema_p.lerp_(p, 0.01)
    if it % 500 == 0:
        model.eval()
        with torch.no_grad():
            val_loss = sum(F.cross_entropy(model(vx), vy).item() for vx, vy in val_loader)
            ema_loss = sum(F.cross_entropy(ema_model(vx), vy).item() for vx, vy in val_loader)
        print(it, val_loss, ema_loss)
        torch.save({"model": model.state_dict(), "step": it}, "checkpoint.pt")
        model.train()
