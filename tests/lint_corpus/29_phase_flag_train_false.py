"""Per-phase mode switch through a flag: `model.train(is_training)` and `model.train(False)`,
one `run_epoch` function for both phases, gradients enabled only when training."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def run_epoch(model, loader, criterion, optimizer=None):
    is_training = optimizer is not None
    model.train(is_training)
    total_loss = 0.0
    with torch.set_grad_enabled(is_training):
        for x, y in loader:
            loss = criterion(model(x), y)
            if is_training:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            total_loss += loss.item()
    return total_loss / len(loader)


def predict(model, loader):
    model.train(False)
    outputs = []
    with torch.no_grad():
        for x, _ in loader:
            outputs.append(model(x))
    return torch.cat(outputs)


if __name__ == "__main__":
    model = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.5), nn.Linear(16, 1))
    criterion = nn.MSELoss()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    train_loader = DataLoader(TensorDataset(torch.randn(300, 4), torch.randn(300, 1)), 10, True)
    test_loader = DataLoader(TensorDataset(torch.randn(100, 4), torch.randn(100, 1)), 50)
    for epoch in range(20):
        train_loss = run_epoch(model, train_loader, criterion, optimizer)
        test_loss = run_epoch(model, test_loader, criterion)
        print(epoch, train_loss, test_loss)
    print(predict(model, test_loader).shape)
