"""A Trainer class holding model, optimizer and loaders as attributes."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Classifier(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_in, 128), nn.BatchNorm1d(128), nn.ReLU())
        self.head = nn.Linear(128, n_out)

    def forward(self, x):
        return self.head(self.body(x))


class Trainer:
    def __init__(self, model, train_set, val_set, lr=1e-3):
        self.model = model
        self.criterion = nn.CrossEntropyLoss()
        self.optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        self.train_loader = DataLoader(train_set, batch_size=64, shuffle=True, drop_last=True)
        self.val_loader = DataLoader(val_set, batch_size=256, shuffle=False)

    def fit(self, epochs):
        for epoch in range(epochs):
            self.model.train()
            for inputs, targets in self.train_loader:
                self.optimizer.zero_grad(set_to_none=True)
                loss = self.criterion(self.model(inputs), targets)
                loss.backward()
                self.optimizer.step()
            print(epoch, self.validate())

    def validate(self):
        self.model.eval()
        val_loss = 0.0
        with torch.no_grad():
            for inputs, targets in self.val_loader:
                val_loss += self.criterion(self.model(inputs), targets).item()
        return val_loss / len(self.val_loader)


if __name__ == "__main__":
    data = TensorDataset(torch.randn(1000, 16), torch.randint(0, 3, (1000,)))
    train_set, val_set = torch.utils.data.random_split(data, [800, 200])
    Trainer(Classifier(16, 3), train_set, val_set).fit(3)
