"""Plain functions: train_one_epoch / evaluate, eval helper decorated with @torch.no_grad()."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def train_one_epoch(model, loader, optimizer, device):
    model.train()
    total = 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item() * x.size(0)
    return total / len(loader.dataset)


@torch.no_grad()
def evaluate(model, loader, device):
    model.eval()
    correct = 0
    for x, y in loader:
        logits = model(x.to(device))
        correct += (logits.argmax(1) == y.to(device)).sum().item()
    return correct / len(loader.dataset)


def main():
    device = torch.device("cpu")
    x, y = torch.randn(512, 20), torch.randint(0, 5, (512,))
    train_loader = DataLoader(TensorDataset(x[:400], y[:400]), batch_size=32, shuffle=True)
    val_loader = DataLoader(TensorDataset(x[400:], y[400:]), batch_size=128)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 5))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(5):
        train_loss = train_one_epoch(model, train_loader, optimizer, device)
        acc = evaluate(model, val_loader, device)
        print(epoch, train_loss, acc)


if __name__ == "__main__":
    main()
