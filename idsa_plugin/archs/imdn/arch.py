"""IMDN (Hui et al., ACM MM 2019), with the official checkpoints' module names."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv(in_channels: int, out_channels: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)


class ContrastChannelAttention(nn.Module):
    """Contrast-aware channel attention: per-channel std + mean through a bottleneck."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
        return x * self.conv_du(std + mean)


class IMDModule(nn.Module):
    """Information multi-distillation block."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.distilled = channels // 4
        self.remaining = channels - self.distilled
        self.c1 = conv(channels, channels, 3)
        self.c2 = conv(self.remaining, channels, 3)
        self.c3 = conv(self.remaining, channels, 3)
        self.c4 = conv(self.remaining, self.distilled, 3)
        self.c5 = conv(self.distilled * 4, channels, 1)
        self.cca = ContrastChannelAttention(self.distilled * 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = [self.distilled, self.remaining]
        d1, r = F.leaky_relu(self.c1(x), 0.05).split(split, dim=1)
        d2, r = F.leaky_relu(self.c2(r), 0.05).split(split, dim=1)
        d3, r = F.leaky_relu(self.c3(r), 0.05).split(split, dim=1)
        out = torch.cat([d1, d2, d3, self.c4(r)], dim=1)
        return self.c5(self.cca(out)) + x


class IMDN(nn.Module):
    """IMDN for RGB input in [0, 1]."""

    def __init__(self, scale: int = 4, channels: int = 64, blocks: int = 6) -> None:
        super().__init__()
        self.scale = scale
        self.fea_conv = conv(3, channels, 3)
        self.blocks = blocks
        for i in range(1, blocks + 1):
            self.add_module(f"IMDB{i}", IMDModule(channels))
        self.c = nn.Sequential(conv(channels * blocks, channels, 1), nn.LeakyReLU(0.05, inplace=True))
        self.LR_conv = conv(channels, channels, 3)
        self.upsampler = nn.Sequential(conv(channels, 3 * scale * scale, 3), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.fea_conv(x)
        outs, f = [], fea
        for i in range(1, self.blocks + 1):
            f = getattr(self, f"IMDB{i}")(f)
            outs.append(f)
        return self.upsampler(self.LR_conv(self.c(torch.cat(outs, dim=1))) + fea)
