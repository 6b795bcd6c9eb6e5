"""DeepSpeed style: the engine owns the optimizer; `model_engine.backward(loss)` and
`model_engine.step()` zero the gradients themselves."""

import argparse

import deepspeed
import torch
from torch import nn
from torch.utils.data import TensorDataset


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", type=int, default=-1)
    parser = deepspeed.add_config_arguments(parser)
    args = parser.parse_args()

    net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 2))
    trainset = TensorDataset(torch.randn(10_000, 64), torch.randint(0, 2, (10_000,)))
    model_engine, _optimizer, trainloader, _ = deepspeed.initialize(
        args=args, model=net, model_parameters=net.parameters(), training_data=trainset
    )
    criterion = nn.CrossEntropyLoss()
    for epoch in range(2):
        running_loss = 0.0
        for i, (inputs, labels) in enumerate(trainloader):
            inputs = inputs.to(model_engine.local_rank)
            labels = labels.to(model_engine.local_rank)
            outputs = model_engine(inputs)
            loss = criterion(outputs, labels)
            model_engine.backward(loss)
            model_engine.step()
            running_loss += loss.item()
            if i % 100 == 99:
                print(f"[{epoch + 1}, {i + 1}] loss: {running_loss / 100:.3f}")
                running_loss = 0.0


if __name__ == "__main__":
    main()
