"""The epoch loop calls a validation helper that switches to eval and back to train."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def validate(net, loader, loss_fn):
    net.eval()
    losses = []
    with torch.no_grad():
        for xb, yb in loader:
            losses.append(loss_fn(net(xb), yb).item())
    net.train()
    return sum(losses) / len(losses)


def main():
    net = nn.Sequential(nn.Linear(5, 20), nn.BatchNorm1d(20), nn.ReLU(), nn.Linear(20, 2))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(net.parameters())
    ds = TensorDataset(torch.randn(200, 5), torch.randint(0, 2, (200,)))
    training_loader = DataLoader(ds, batch_size=20, shuffle=True, drop_last=True)
    validation_loader = DataLoader(ds, batch_size=50)
    running_loss = 0.0
    for epoch in range(5):
        for step, (xb, yb) in enumerate(training_loader):
            optimizer.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            optimizer.step()
            running_loss += loss.detach()
        print(epoch, validate(net, validation_loader, loss_fn), float(running_loss))


if __name__ == "__main__":
    main()
