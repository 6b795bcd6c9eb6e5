"""DCGAN-style loop with two networks and two optimizers."""

import torch
from torch import nn

latent = 16
netG = nn.Sequential(nn.Linear(latent, 64), nn.ReLU(), nn.Linear(64, 32), nn.Tanh())
netD = nn.Sequential(nn.Linear(32, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))
criterion = nn.BCEWithLogitsLoss()
optimizerD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
real_data = torch.randn(512, 32)

for epoch in range(3):
    for i in range(0, len(real_data), 64):
        real = real_data[i : i + 64]
        b = real.size(0)
        # (1) update D: maximize log(D(x)) + log(1 - D(G(z)))
        netD.zero_grad()
        errD_real = criterion(netD(real), torch.ones(b, 1))
        errD_real.backward()
        fake = netG(torch.randn(b, latent))
        errD_fake = criterion(netD(fake.detach()), torch.zeros(b, 1))
        errD_fake.backward()
        optimizerD.step()
        # (2) update G: maximize log(D(G(z)))
        netG.zero_grad()
        errG = criterion(netD(fake), torch.ones(b, 1))
        errG.backward()
        optimizerG.step()
        d_loss = (errD_real + errD_fake).item()
