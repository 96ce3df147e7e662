"""E_wave: the trainable multi-resolution wavelet encoder (LiteVAE-S layout, DESIGN section 3).

Three per-level feature extractors turn the Haar levels into features, which are pooled to 1/8
resolution, concatenated and mapped by an aggregator to the latent mean and log-variance.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from wavegms.net.wavelets import haar_levels

WIDTH = 16
MULTIPLIERS = (1, 2, 2)
BLOCKS_PER_MULTIPLIER = 2
GROUPS = 8


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv3x3 twice, plus a 1x1 skip (with bias) where the width changes."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(GROUPS, c_in),
            nn.SiLU(),
            nn.Conv2d(c_in, c_out, 3, padding=1),
            nn.GroupNorm(GROUPS, c_out),
            nn.SiLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1),
        )
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


class FlatUNet(nn.Module):
    """A UNet without spatial resampling: encoder blocks, a middle, a mirrored decoder whose
    blocks each read the concatenation of their input and the matching encoder output."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        widths = [WIDTH * m for m in MULTIPLIERS for _ in range(BLOCKS_PER_MULTIPLIER)]
        self.inp = nn.Conv2d(c_in, WIDTH, 3, padding=1)
        self.down = nn.ModuleList()
        c = WIDTH
        for w in widths:
            self.down.append(ResBlock(c, w))
            c = w
        self.middle = nn.Sequential(ResBlock(c, c), ResBlock(c, c))
        self.up = nn.ModuleList()
        for w in reversed(widths):
            self.up.append(ResBlock(c + w, w))
            c = w
        self.out = nn.Conv2d(c, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        skips = []
        for block in self.down:
            h = block(h)
            skips.append(h)
        h = self.middle(h)
        for block in self.up:
            h = block(torch.cat([h, skips.pop()], dim=1))
        return self.out(h)


class WaveletEncoder(nn.Module):
    """Image in [0, 1] (B, 3, H, W) -> (mu, logvar), each (B, C, H/8, W/8)."""

    LOGVAR_RANGE = (-30.0, 20.0)

    def __init__(self, latent_channels: int) -> None:
        super().__init__()
        self.latent_channels = latent_channels
        self.levels = nn.ModuleList(FlatUNet(12, 12) for _ in range(3))
        self.aggregate = FlatUNet(36, 2 * latent_channels)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = []
        levels = zip(haar_levels(images), self.levels, strict=True)
        for level, (bands, net) in enumerate(levels, start=1):
            pool = 2 ** (3 - level)  # levels 1, 2, 3 sit at 1/2, 1/4, 1/8
            f = net(bands)
            features.append(F.avg_pool2d(f, pool) if pool > 1 else f)
        mu, logvar = self.aggregate(torch.cat(features, dim=1)).chunk(2, dim=1)
        return mu, logvar.clamp(*self.LOGVAR_RANGE)
