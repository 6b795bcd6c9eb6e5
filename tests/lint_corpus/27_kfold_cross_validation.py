"""K-fold cross-validation: a fresh model and optimizer per fold, `SubsetRandomSampler` for
the training indices, and per-fold validation with `model.train(False)`."""

import numpy as np
import torch
from sklearn.model_selection import KFold
from torch import nn
from torch.utils.data import DataLoader, SubsetRandomSampler, TensorDataset


def make_model():
    return nn.Sequential(nn.Linear(12, 48), nn.ReLU(), nn.Dropout(0.3), nn.Linear(48, 2))


def reset_weights(module):
    for layer in module.children():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()


dataset = TensorDataset(torch.randn(900, 12), torch.randint(0, 2, (900,)))
kfold = KFold(n_splits=5, shuffle=True, random_state=0)
loss_function = nn.CrossEntropyLoss()
results = {}

for fold, (train_ids, val_ids) in enumerate(kfold.split(np.arange(len(dataset)))):
    trainloader = DataLoader(dataset, batch_size=30, sampler=SubsetRandomSampler(train_ids))
    valloader = DataLoader(dataset, batch_size=100, sampler=SubsetRandomSampler(val_ids))
    network = make_model()
    network.apply(reset_weights)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)

    for epoch in range(5):
        network.train(True)
        current_loss = 0.0
        for i, (inputs, targets) in enumerate(trainloader):
            optimizer.zero_grad()
            outputs = network(inputs)
            loss = loss_function(outputs, targets)
            loss.backward()
            optimizer.step()
            current_loss += loss.item()

    network.train(False)
    correct, total = 0, 0
    with torch.no_grad():
        for inputs, targets in valloader:
            predicted = network(inputs).argmax(1)
            total += targets.size(0)
            correct += (predicted == targets).sum().item()
    results[fold] = 100.0 * correct / total

print(f"average accuracy: {sum(results.values()) / len(results):.2f}%")
