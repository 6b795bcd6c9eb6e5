"""Nested epoch/batch loops with periodic evaluation inside the batch loop."""

import torch
from torch import nn
from torch.nn import MSELoss
from torch.utils.data import DataLoader, TensorDataset


def fit(epochs=3, eval_every=20):
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 1))
    criterion = MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2, weight_decay=0)
    data = TensorDataset(torch.randn(600, 6), torch.randn(600, 1))
    train_part, val_part = torch.utils.data.random_split(data, [500, 100])
    train_loader = DataLoader(train_part, batch_size=25, shuffle=True)
    val_loader = DataLoader(val_part, batch_size=100)
    step = 0
    history = []
    for epoch in range(epochs):
        for xb, yb in train_loader:
            model.train()
            pred = model(xb)
            loss = criterion(pred, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step % eval_every == 0:
                model.eval()
                with torch.no_grad():
                    val_loss = sum(criterion(model(xv), yv).item() for xv, yv in val_loader)
                history.append((step, loss.detach(), val_loss))
    return history
