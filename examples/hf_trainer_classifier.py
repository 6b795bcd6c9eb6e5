"""Fine-tune a small BERT sequence classifier with the Hugging Face ``Trainer``.

A plain ``transformers`` script of the kind the course notebooks start from:
a model, a tokenized data set, ``TrainingArguments`` and ``Trainer.train()``,
evaluating after every epoch. Nothing is downloaded: the model is built from a
tiny ``BertConfig`` (2 layers, hidden size 32) and the "tokenized" data are
synthetic, so it runs in a few seconds on a CPU.

The task: sequences of 32 token ids from a vocabulary of 100. A sequence is
positive when it contains more "positive" tokens (ids 10-19) than "negative"
ones (ids 20-29); the other ids are filler. Each sequence has some padding at
the end (attention mask 0), as a real tokenizer's output would.

``--bug`` injects exactly one realistic bug (the default, ``none``, is correct):

  none          the clean run (AdamW, lr 5e-3, linear decay, 4 epochs).
  lr-too-high   learning_rate=1.0 instead of 5e-3: the training loss jumps to
                several times its starting value in the first steps and the model
                ends up no better than chance (gradient clipping at
                max_grad_norm=1.0 does not save it: Adam's step size is the
                learning rate whatever the gradient's norm).

Example:
    python examples/hf_trainer_classifier.py
    python examples/hf_trainer_classifier.py --bug lr-too-high
    babysit audit examples/hf_trainer_classifier.py -- --bug lr-too-high
"""

import argparse
import tempfile

import torch
from torch.utils.data import Dataset
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainingArguments,
)

BUGS = ["none", "lr-too-high"]

VOCAB = 100
SEQ_LEN = 32
PAD, CLS = 0, 1
POSITIVE = range(10, 20)
NEGATIVE = range(20, 30)


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=float, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=1024)
    parser.add_argument("--n-val", type=int, default=256)
    parser.add_argument(
        "--bug",
        choices=BUGS,
        default="none",
        help="inject one realistic bug, see the list above (default: none)",
    )
    return parser.parse_args()


class CountingTask(Dataset):
    """Already-tokenized examples: input_ids, attention_mask and labels, as a tokenizer
    and ``datasets.map`` would produce them."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(30, VOCAB, (n, SEQ_LEN), generator=g)
        # sprinkle a few positive and negative tokens over each sequence
        n_pos = torch.randint(0, 6, (n,), generator=g)
        n_neg = torch.randint(0, 6, (n,), generator=g)
        n_neg[n_neg == n_pos] += 1  # no ties: every label is well defined
        lengths = torch.randint(SEQ_LEN // 2, SEQ_LEN + 1, (n,), generator=g)
        for i in range(n):
            slots = torch.randperm(int(lengths[i]) - 1, generator=g) + 1
            p, q = int(n_pos[i]), int(n_neg[i])
            ids[i, slots[:p]] = torch.randint(10, 20, (p,), generator=g)
            ids[i, slots[p : p + q]] = torch.randint(20, 30, (q,), generator=g)
        ids[:, 0] = CLS
        mask = (torch.arange(SEQ_LEN) < lengths[:, None]).long()
        self.input_ids = ids.masked_fill(mask == 0, PAD)
        self.attention_mask = mask
        self.labels = (n_pos > n_neg).long()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {
            "input_ids": self.input_ids[i],
            "attention_mask": self.attention_mask[i],
            "labels": self.labels[i],
        }


def main():
    args = parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # a tiny model: intra-op threads only add overhead

    lr = args.lr
    if args.bug == "lr-too-high":
        lr = 1.0  # BUG: 200x the learning rate that works (5e-3)

    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=SEQ_LEN,
        num_labels=2,
        # BERT-base's initializer_range 0.02 is ~0.55/sqrt(768); keep that ratio for width 32
        initializer_range=0.1,
    )
    model = BertForSequenceClassification(config)
    train = CountingTask(args.n_train, seed=args.seed)
    val = CountingTask(args.n_val, seed=args.seed + 1)

    with tempfile.TemporaryDirectory() as output_dir:
        training_args = TrainingArguments(
            output_dir=output_dir,
            num_train_epochs=args.epochs,
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=128,
            learning_rate=lr,
            eval_strategy="epoch",
            logging_strategy="epoch",
            save_strategy="no",
            report_to="none",
            use_cpu=True,
            disable_tqdm=True,
            seed=args.seed,
            dataloader_num_workers=0,
        )
        trainer = Trainer(model=model, args=training_args, train_dataset=train, eval_dataset=val)
        trainer.train()
        metrics = trainer.evaluate()
    print(f"final eval loss {metrics['eval_loss']:.4f}")


if __name__ == "__main__":
    main()
