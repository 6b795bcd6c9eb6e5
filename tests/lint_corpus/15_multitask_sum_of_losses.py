"""Multi-task: the per-head losses are summed into the objective that is back-propagated."""

import torch
import torch.nn.functional as F
from torch import nn


class MultiHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Linear(10, 32)
        self.heads = nn.ModuleList([nn.Linear(32, 3) for _ in range(4)])

    def forward(self, x):
        h = torch.relu(self.trunk(x))
        return [head(h) for head in self.heads]


model = MultiHead()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(100):
    x = torch.randn(16, 10)
    ys = [torch.randint(0, 3, (16,)) for _ in range(4)]
    outputs = model(x)
    total_loss = 0
    for out, y in zip(outputs, ys):
        total_loss = total_loss + F.cross_entropy(out, y)
    optimizer.zero_grad()
    total_loss.backward()
    optimizer.step()
    task_losses = []
    for out, y in zip(outputs, ys):
        task_losses.append(F.cross_entropy(out, y).item())
