"""Fine-tuning a head on a frozen backbone whose BatchNorm statistics stay fixed: the backbone is
put back in eval mode after model.train() every epoch, on purpose."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU())
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        return self.head(self.backbone(x))


model = Classifier()
for p in model.backbone.parameters():
    p.requires_grad_(False)
optimizer = torch.optim.Adam(model.head.parameters(), lr=1e-3)
loader = DataLoader(
    TensorDataset(torch.randn(128, 16), torch.randint(0, 4, (128,))), 32, shuffle=True
)
for epoch in range(3):
    model.train()
    model.backbone.eval()
    for x, y in loader:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
