"""Gradient accumulation over 4 micro-batches."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ACCUM = 4
model = nn.Linear(10, 2)
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
loader = DataLoader(
    TensorDataset(torch.randn(256, 10), torch.randint(0, 2, (256,))), batch_size=8, shuffle=True
)

for epoch in range(2):
    model.train()
    optimizer.zero_grad()
    for i, (x, y) in enumerate(loader):
        loss = F.cross_entropy(model(x), y) / ACCUM
        loss.backward()
        if (i + 1) % ACCUM == 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
