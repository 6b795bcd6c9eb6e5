"""A step-based while loop with model.zero_grad() and an infinite data iterator."""

import itertools

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def make_loader(batch_size):
    ds = TensorDataset(torch.randn(1024, 4), torch.randn(1024, 1))
    return DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=0)


def main(max_steps=500):
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    batches = itertools.cycle(make_loader(32))
    step = 0
    while step < max_steps:
        inputs, target = next(batches)
        model.zero_grad()
        loss = nn.functional.mse_loss(model(inputs), target)
        loss.backward()
        optimizer.step()
        step += 1
        if step % 100 == 0:
            print(step, float(loss))


if __name__ == "__main__":
    main()
