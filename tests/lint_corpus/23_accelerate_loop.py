"""An Accelerate training script: `accelerator.backward(loss)`, accumulation through
`accelerator.accumulate(model)`, and `gather_for_metrics` in evaluation."""

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def build_model():
    return nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10))


def training_function(num_epochs=3, lr=2e-4):
    accelerator = Accelerator(gradient_accumulation_steps=2, mixed_precision="no")
    train_ds = TensorDataset(torch.randn(1024, 32), torch.randint(0, 10, (1024,)))
    eval_ds = TensorDataset(torch.randn(256, 32), torch.randint(0, 10, (256,)))
    train_dataloader = DataLoader(train_ds, shuffle=True, batch_size=32)
    eval_dataloader = DataLoader(eval_ds, shuffle=False, batch_size=64)
    model = build_model()
    optimizer = torch.optim.AdamW(params=model.parameters(), lr=lr)
    lr_scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=num_epochs * len(train_dataloader)
    )
    model, optimizer, train_dataloader, eval_dataloader, lr_scheduler = accelerator.prepare(
        model, optimizer, train_dataloader, eval_dataloader, lr_scheduler
    )
    for epoch in range(num_epochs):
        model.train()
        for step, (inputs, labels) in enumerate(train_dataloader):
            with accelerator.accumulate(model):
                outputs = model(inputs)
                loss = F.cross_entropy(outputs, labels)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()

        model.eval()
        correct = 0
        for inputs, labels in eval_dataloader:
            with torch.no_grad():
                predictions = model(inputs).argmax(dim=-1)
            predictions, references = accelerator.gather_for_metrics((predictions, labels))
            correct += (predictions == references).long().sum().item()
        accelerator.print(f"epoch {epoch}: accuracy {correct / len(eval_ds):.3f}")
    accelerator.end_training()


if __name__ == "__main__":
    training_function()
