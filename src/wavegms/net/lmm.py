"""The latent mapping model: a ResAttnUNet with deep supervision (from GMS, DESIGN section 4).

Everything runs at the latent resolution (H/8); there is no resampling. Four heads read the
decoder at successive depths; training supervises three of them (``SUPERVISED_HEADS``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

GROUPS = 16
ENCODER = ((32, 32), (32, 64), (64, 128), (128, 128))
HEADS = ("level3", "level2", "level1", "out")
SUPERVISED_HEADS = ("level2", "level1", "out")


class SelfAttention(nn.Module):
    """Single-head self-attention over all spatial positions, added back to the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(GROUPS, channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = self.norm(x)
        q, k, v = (f(n).flatten(2).transpose(1, 2) for f in (self.q, self.k, self.v))
        # scaled_dot_product_attention uses the C^-0.5 scale of the reference.
        a = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(a.transpose(1, 2).reshape(b, c, h, w))


class ResAttBlock(nn.Module):
    """GroupNorm-PReLU-conv3x3 twice with a bias-free 1x1 skip, then self-attention."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(GROUPS, c_in),
            nn.PReLU(),
            nn.Conv2d(c_in, c_out, 3, padding=1),
            nn.GroupNorm(GROUPS, c_out),
            nn.PReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1),
        )
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()
        self.attn = SelfAttention(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(self.body(x) + self.skip(x))


def head(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.GroupNorm(GROUPS, c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    )


class LatentMappingModel(nn.Module):
    """Image latent (B, C, h, w) -> mask latents, one per head in ``HEADS``."""

    def __init__(self, latent_channels: int) -> None:
        super().__init__()
        c = latent_channels
        self.inp = nn.Conv2d(c, ENCODER[0][0], 3, padding=1)
        self.down = nn.ModuleList(ResAttBlock(a, b) for a, b in ENCODER)
        # Each decoder block reads [skip, h]: skips are the outputs of the encoder blocks before
        # the last, deepest first, then the input conv.
        skip_widths = [*[b for _, b in ENCODER[:-1]][::-1], ENCODER[0][0]]
        self.up = nn.ModuleList()
        width = ENCODER[-1][1]
        for skip in skip_widths:
            self.up.append(ResAttBlock(skip + width, skip))
            width = skip
        # A head reads the output of its decoder block, whose width is that block's skip width.
        self.heads = nn.ModuleDict({n: head(w, c) for n, w in zip(HEADS, skip_widths, strict=True)})
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.inp(z)
        skips = [h]
        for block in self.down:
            h = block(h)
            skips.append(h)
        skips.pop()  # the deepest output is h itself
        out = {}
        for name, block in zip(HEADS, self.up, strict=False):
            h = block(torch.cat([skips.pop(), h], dim=1))
            out[name] = self.heads[name](h)
        return out
