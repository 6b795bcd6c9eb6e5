"""Binary classification on raw logits with BCEWithLogitsLoss; sigmoid only for predictions."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0]))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x, y = torch.randn(400, 8), torch.randint(0, 2, (400, 1)).float()
train_dl = DataLoader(TensorDataset(x[:300], y[:300]), batch_size=32, shuffle=True)
valid_dl = DataLoader(TensorDataset(x[300:], y[300:]), batch_size=100)

for epoch in range(10):
    model.train()
    epoch_losses = []
    for xb, yb in train_dl:
        logits = model(xb)
        loss = loss_fn(logits, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        epoch_losses.append(loss.item())

    model.eval()
    with torch.inference_mode():
        hits = 0
        for xb, yb in valid_dl:
            probs = torch.sigmoid(model(xb))
            hits += ((probs > 0.5).float() == yb).sum().item()
    print(epoch, sum(epoch_losses) / len(epoch_losses), hits / 100)
