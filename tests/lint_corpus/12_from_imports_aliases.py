"""Imports spelled every way: from torch import nn, optim; CrossEntropyLoss as CE."""

from torch import nn, no_grad, optim, randint, randn
from torch.nn import CrossEntropyLoss as CE
from torch.nn import functional as F
from torch.utils.data import DataLoader as DL
from torch.utils.data import TensorDataset


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(12, 24), nn.GELU(), nn.Linear(24, 3))

    def forward(self, x):
        return self.layers(x)


def main():
    net = Model()
    ce = CE(label_smoothing=0.1)
    opt = optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    tr = DL(TensorDataset(randn(90, 12), randint(0, 3, (90,))), batch_size=9, shuffle=True)
    te = DL(TensorDataset(randn(30, 12), randint(0, 3, (30,))), batch_size=30)
    for _ in range(4):
        net.train()
        for xb, yb in tr:
            logits = net(xb)
            loss = ce(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with no_grad():
            for xb, yb in te:
                probs = F.softmax(net(xb), dim=-1)
                test_acc = (probs.argmax(-1) == yb).float().mean().item()
        print(test_acc)


main()
