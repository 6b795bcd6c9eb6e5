"""nanoGPT-style optimizer groups: decay only 2-D parameters; cosine schedule; clip."""

import math

import torch
from torch import nn


class TinyLM(nn.Module):
    def __init__(self, vocab=100, dim=32):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)

    def forward(self, idx, targets=None):
        logits = self.head(self.ln(self.emb(idx)))
        if targets is None:
            return logits, None
        loss = nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss


def configure_optimizers(model, weight_decay, lr):
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def get_batch(n=8, block=16, vocab=100):
    data = torch.randint(0, vocab, (n, block + 1))
    return data[:, :-1], data[:, 1:]


def main(max_iters=100, lr=6e-4):
    model = TinyLM()
    optimizer = configure_optimizers(model, weight_decay=0.1, lr=lr)
    for it in range(max_iters):
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * it / max_iters))
        xb, yb = get_batch()
        _, loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if it % 50 == 0:
            model.eval()
            with torch.no_grad():
                xv, yv = get_batch()
                _, val_loss = model(xv, yv)
            model.train()
            print(it, loss.item(), val_loss.item())


if __name__ == "__main__":
    main()
