"""`train_one_epoch(model, loader, optimizer)` and `evaluate(model, loader)` helpers called from
main, with tqdm progress bars and `loss_sum += loss.item()` bookkeeping."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm


def train_one_epoch(model, loader, optimizer, device):
    model.train()
    loss_sum, seen = 0.0, 0
    for batch in tqdm(loader, desc="train"):
        inputs, targets = (t.to(device) for t in batch)
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * inputs.size(0)
        seen += inputs.size(0)
    return loss_sum / seen


@torch.no_grad()
def evaluate(model, loader, device):
    model.eval()
    correct = total = 0
    for inputs, targets in tqdm(loader, desc="eval", leave=False):
        inputs, targets = inputs.to(device), targets.to(device)
        predictions = model(inputs).argmax(dim=1)
        correct += (predictions == targets).sum().item()
        total += targets.numel()
    return correct / total


def main():
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 5)).to(
        device
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    full = TensorDataset(torch.randn(2000, 20), torch.randint(0, 5, (2000,)))
    train_set, test_set = torch.utils.data.random_split(full, [1600, 400])
    train_loader = DataLoader(train_set, batch_size=32, shuffle=True, num_workers=2)
    test_loader = DataLoader(test_set, batch_size=128)
    for epoch in range(10):
        train_loss = train_one_epoch(model, train_loader, optimizer, device)
        accuracy = evaluate(model, test_loader, device)
        print(f"epoch {epoch}: loss {train_loss:.3f} accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
