"""L-BFGS with a closure: zero_grad and backward live in the closure."""

import torch
from torch import nn

x = torch.linspace(-1, 1, 200).unsqueeze(1)
y = torch.sin(3 * x)
model = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 1))
optimizer = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=20)


def closure():
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    return loss


for epoch in range(10):
    loss = optimizer.step(closure)
    print(epoch, loss.item())
