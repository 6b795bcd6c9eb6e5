"""Full-batch L-BFGS inside a class: the closure is a nested function of the fitting method
that zeroes `self.optimizer` and returns the loss; strong Wolfe line search."""

import torch
from torch import nn


class CurveFitter:
    def __init__(self, hidden: int = 64):
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.optimizer = torch.optim.LBFGS(
            self.net.parameters(), lr=1.0, max_iter=50, line_search_fn="strong_wolfe"
        )
        self.history: list[float] = []

    def fit(self, x: torch.Tensor, y: torch.Tensor, rounds: int = 20) -> None:
        self.net.train()
        for _ in range(rounds):

            def closure():
                self.optimizer.zero_grad()
                loss = nn.functional.mse_loss(self.net(x), y)
                loss.backward()
                return loss

            loss = self.optimizer.step(closure)
            self.history.append(loss.item())

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        self.net.eval()
        with torch.no_grad():
            return self.net(x)


if __name__ == "__main__":
    xs = torch.linspace(-3, 3, 300).unsqueeze(1)
    fitter = CurveFitter()
    fitter.fit(xs, torch.sin(xs))
    print(fitter.predict(xs[:5]), fitter.history[-1])
