"""A Lightning module: the trainer runs the loops, switches modes and zeroes gradients."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class LitClassifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 4))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)

    def train_dataloader(self):
        ds = TensorDataset(torch.randn(256, 32), torch.randint(0, 4, (256,)))
        return DataLoader(ds, batch_size=32, shuffle=True)

    def val_dataloader(self):
        ds = TensorDataset(torch.randn(64, 32), torch.randint(0, 4, (64,)))
        return DataLoader(ds, batch_size=64)


if __name__ == "__main__":
    L.Trainer(max_epochs=2).fit(LitClassifier())
