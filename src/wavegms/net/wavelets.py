"""Haar multi-level inputs of E_wave (DESIGN section 3).

For level L in 1..3 the level-L approximation and the three level-L detail bands of each RGB
channel are stacked into 12 channels (LL first) and divided by 2^L, so deeper levels, whose
coefficients grow by 2 per level for the orthonormal Haar filter, stay on the same scale.
"""

from __future__ import annotations

import ptwt
import pywt
import torch

HAAR = pywt.Wavelet("haar")
LEVELS = (1, 2, 3)


def haar_step(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One 2D Haar step: (B, 3, H, W) -> approximation (B, 3, H/2, W/2), details (B, 9, ...)."""
    approx, details = ptwt.wavedec2(x, HAAR, level=1, mode="symmetric")
    return approx, torch.cat(tuple(details), dim=1)


def haar_levels(images: torch.Tensor) -> list[torch.Tensor]:
    """Images (B, 3, H, W) in [0, 1] -> one (B, 12, H/2^L, W/2^L) tensor per level 1..3.

    The level-L coefficients of ``wavedec2(level=L)`` equal one Haar step applied to the
    level-(L-1) approximation (exactly, for even sizes), so three steps give all levels.
    """
    # fp32 and outside any autocast: ptwt rejects bf16, and under autocast its convolutions
    # would return bf16 for the next level (mixed-precision training on CUDA or a bf16 CPU).
    # Checked first, so that exported and traced graphs see no autocast region.
    if torch.is_autocast_enabled(images.device.type):
        with torch.autocast(images.device.type, enabled=False):
            return _levels(images.float())
    return _levels(images)


def _levels(images: torch.Tensor) -> list[torch.Tensor]:
    out = []
    approx = images
    for level in LEVELS:
        approx, details = haar_step(approx)
        # Channel order: LL (RGB), then the H, V, D detail bands (RGB each), as pywt orders them.
        bands = torch.cat([approx, details], dim=1)
        out.append(bands / 2**level)
    return out
