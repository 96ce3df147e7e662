"""Training losses (DESIGN section 5): latent MSE, soft Dice through the frozen decoder, and the
alignment of E_wave's latent with the frozen encoder's latent of the same image."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from wavegms.net.lmm import SUPERVISED_HEADS


def soft_dice_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per image, averaged over the batch. pred, target: (B, 1, H, W) in [0, 1]."""
    dims = tuple(range(1, pred.ndim))
    inter = (pred * target).sum(dims)
    dice = (2 * inter + eps) / (pred.sum(dims) + target.sum(dims) + eps)
    return (1 - dice).mean()


def latent_loss(heads: dict[str, torch.Tensor], z_mask: torch.Tensor) -> torch.Tensor:
    """MSE to the mask latent, summed over the supervised heads."""
    return sum(F.mse_loss(heads[h], z_mask) for h in SUPERVISED_HEADS)


def alignment_loss(z: torch.Tensor, z_image: torch.Tensor) -> torch.Tensor:
    """0.9 x (1 - cosine) between per-pixel latent vectors + 0.1 x smooth-L1."""
    cosine = F.cosine_similarity(z, z_image, dim=1)  # (B, h, w)
    return 0.9 * (1 - cosine).mean() + 0.1 * F.smooth_l1_loss(z, z_image)


def segmentation_loss(
    heads: dict[str, torch.Tensor], masks: torch.Tensor, decode_mask, which=SUPERVISED_HEADS
) -> torch.Tensor:
    """Soft Dice of each decoded head against the mask, summed. ``decode_mask`` maps a latent to
    a (B, 1, H, W) soft mask through the frozen decoder (gradients flow to the latent)."""
    return sum(soft_dice_loss(decode_mask(heads[h]), masks) for h in which)
