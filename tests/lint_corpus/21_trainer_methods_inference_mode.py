"""A Trainer class whose loops live in methods: `self.optimizer`, `self.scheduler`, a training
epoch method accumulating `running_loss += loss.detach()`, and an evaluation method decorated
with `@torch.inference_mode()` that switches with `self.model.train(mode=False)`."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Trainer:
    def __init__(self, model: nn.Module, train_set, valid_set, epochs: int = 5):
        self.model = model
        self.epochs = epochs
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=epochs)
        self.train_loader = DataLoader(train_set, batch_size=64, shuffle=True, drop_last=True)
        self.valid_loader = DataLoader(valid_set, batch_size=256)

    def train_epoch(self) -> float:
        self.model.train(mode=True)
        running_loss = torch.zeros(())
        for step, (features, labels) in enumerate(self.train_loader):
            self.optimizer.zero_grad()
            logits = self.model(features)
            loss = self.loss_fn(logits, labels)
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=5.0)
            self.optimizer.step()
            running_loss += loss.detach()
        self.scheduler.step()
        return running_loss.item() / (step + 1)

    @torch.inference_mode()
    def evaluate(self) -> float:
        self.model.train(mode=False)
        valid_loss = 0.0
        for features, labels in self.valid_loader:
            valid_loss += self.loss_fn(self.model(features), labels).item()
        return valid_loss / len(self.valid_loader)

    def fit(self) -> None:
        for epoch in range(self.epochs):
            train_loss = self.train_epoch()
            valid_loss = self.evaluate()
            print(f"{epoch}: {train_loss:.4f} / {valid_loss:.4f}")


if __name__ == "__main__":
    net = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 3))
    data = TensorDataset(torch.randn(512, 8), torch.randint(0, 3, (512,)))
    Trainer(net, data, data).fit()
