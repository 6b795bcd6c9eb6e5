"""Mixed precision with GradScaler; zero_grad(set_to_none=True) at the end of the loop body."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def train(model, loader, epochs=1, device="cpu"):
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler(device, enabled=False)
    for _ in range(epochs):
        model.train()
        for images, labels in loader:
            with torch.autocast(device_type=device, enabled=False):
                outputs = model(images)
                loss = criterion(outputs, labels)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)


if __name__ == "__main__":
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    data = TensorDataset(torch.randn(64, 3, 8, 8), torch.randint(0, 10, (64,)))
    train(net, DataLoader(data, batch_size=16, shuffle=True))
