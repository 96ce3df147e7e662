"""Frozen tiny autoencoders behind one interface.

``encode`` takes images in [-1, 1] and returns latents at 1/8 resolution; ``decode`` returns
images in roughly [-1, 1]. Backends are frozen and in eval mode by construction: training the
segmentation model never updates them, and ``.train()`` cannot switch them back.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from wavegms.core.errors import InputError  # a ValueError too, as callers catch

BACKENDS = ("taef2", "taesd")


class FrozenAutoencoder(nn.Module):
    """Base class: subclasses set ``latent_channels`` and implement ``_encode`` / ``_decode``."""

    latent_channels: int
    name: str

    def freeze(self) -> FrozenAutoencoder:
        self.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> FrozenAutoencoder:
        # The autoencoder is a fixed coordinate system for the latents: keep it in eval mode.
        return super().train(False)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> latents (B, C, H/8, W/8)."""
        return self._encode(images)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, C, h, w) -> images (B, 3, 8h, 8w) in roughly [-1, 1]."""
        return self._decode(latents)

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def load_autoencoder(backend: str = "taef2", path: str | Path | None = None) -> FrozenAutoencoder:
    """Build a frozen backend by name.

    ``path``: for ``taef2`` a folder with the original ``taef2_encoder.pth`` and
    ``taef2_decoder.pth`` or their ``.safetensors`` conversion (default: ``$WAVEGMS_TAEF2``, else
    the weights shipped in the package); for ``taesd`` a diffusers folder or hub id (default
    ``madebyollin/taesd``).
    """
    if backend == "taef2":
        from wavegms.net.autoencoders.taef2 import load_taef2

        return load_taef2(path)
    if backend == "taesd":
        from wavegms.net.autoencoders.taesd import load_taesd

        return load_taesd(path)
    raise InputError(f"unknown autoencoder backend {backend!r}; choose one of {BACKENDS}")
