"""Hugging Face style: the model returns its loss (outputs.loss); scheduler stepped per batch."""

import torch
from torch.utils.data import DataLoader
from transformers import AutoModelForSequenceClassification, get_linear_schedule_with_warmup


def run(train_dataset, eval_dataset, epochs=3):
    model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased", num_labels=2)
    train_dataloader = DataLoader(train_dataset, shuffle=True, batch_size=16)
    eval_dataloader = DataLoader(eval_dataset, batch_size=64)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    lr_scheduler = get_linear_schedule_with_warmup(optimizer, 0, epochs * len(train_dataloader))
    for epoch in range(epochs):
        model.train()
        for batch in train_dataloader:
            outputs = model(**batch)
            loss = outputs.loss
            loss.backward()
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()

        model.eval()
        eval_loss = 0.0
        for batch in eval_dataloader:
            with torch.no_grad():
                outputs = model(**batch)
            eval_loss += outputs.loss.item()
        print(epoch, eval_loss / len(eval_dataloader))
