"""Gradient accumulation where the reset sits in an `if` at the top of the micro-step, with AMP
and a `while True` loop over an iterator that is restarted at the end of the data."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ACCUMULATION_STEPS = 8
MAX_STEPS = 1000

model = nn.Sequential(nn.Linear(16, 64), nn.GELU(), nn.Linear(64, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
scaler = torch.amp.GradScaler("cuda", enabled=torch.cuda.is_available())
loader = DataLoader(
    TensorDataset(torch.randn(4096, 16), torch.randn(4096, 1)), batch_size=16, shuffle=True
)

micro_step = 0
data_iter = iter(loader)
model.train()
while micro_step < MAX_STEPS * ACCUMULATION_STEPS:
    try:
        x, y = next(data_iter)
    except StopIteration:
        data_iter = iter(loader)
        x, y = next(data_iter)
    if micro_step % ACCUMULATION_STEPS == 0:
        optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cuda", enabled=torch.cuda.is_available()):
        loss = nn.functional.mse_loss(model(x), y) / ACCUMULATION_STEPS
    scaler.scale(loss).backward()
    if (micro_step + 1) % ACCUMULATION_STEPS == 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
    micro_step += 1
