"""REINFORCE: log-probabilities of one episode appended to a list (they are meant to carry the
graph), one backward per episode, rewards accumulated as numbers."""

import torch
from torch import nn
from torch.distributions import Categorical


class Policy(nn.Module):
    def __init__(self, n_obs=4, n_actions=2):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_obs, 128), nn.ReLU(), nn.Linear(128, n_actions))

    def forward(self, obs):
        return torch.softmax(self.net(obs), dim=-1)


def fake_env_step(action):
    return torch.randn(4), float(action), torch.rand(()) < 0.05


policy = Policy()
optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
gamma = 0.99
running_reward = 10.0

for episode in range(500):
    obs = torch.randn(4)
    log_probs, rewards = [], []
    for t in range(1000):
        dist = Categorical(policy(obs))
        action = dist.sample()
        log_probs.append(dist.log_prob(action))
        obs, reward, done = fake_env_step(action.item())
        rewards.append(reward)
        if done:
            break
    returns, discounted = [], 0.0
    for r in reversed(rewards):
        discounted = r + gamma * discounted
        returns.insert(0, discounted)
    returns = torch.tensor(returns)
    returns = (returns - returns.mean()) / (returns.std() + 1e-8)
    policy_loss = torch.stack([-lp * g for lp, g in zip(log_probs, returns)]).sum()
    optimizer.zero_grad()
    policy_loss.backward()
    optimizer.step()
    running_reward = 0.05 * sum(rewards) + 0.95 * running_reward
