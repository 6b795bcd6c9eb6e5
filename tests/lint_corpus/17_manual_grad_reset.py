"""A hand-written SGD: gradients reset by setting p.grad = None in a loop over parameters."""

import torch
from torch import nn

model = nn.Linear(3, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
data = [(torch.randn(8, 3), torch.randn(8, 1)) for _ in range(20)]
for epoch in range(5):
    for xb, yb in data:
        loss = ((model(xb) - yb) ** 2).mean()
        loss.backward()
        opt.step()
        for p in model.parameters():
            p.grad = None
