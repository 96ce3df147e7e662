"""WaveGMS: E_wave + LMM on top of a frozen tiny autoencoder (DESIGN section 1).

At inference only E_wave (its mean), the LMM's ``out`` head and the frozen decoder run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from wavegms.core.errors import InputError
from wavegms.net.autoencoders import FrozenAutoencoder
from wavegms.net.ewave import WaveletEncoder
from wavegms.net.lmm import LatentMappingModel

#: Largest sizes a model may have: far above any real backend (latent widths 4-32) or input
#: (224), low enough that a damaged config cannot ask for terabytes before anything runs.
MAX_LATENT_CHANNELS = 256
MAX_IMAGE_SIZE = 4096


@dataclass(frozen=True)
class ModelConfig:
    """What a model file must agree with: its backend, latent width and input size.
    Sizes are checked when it is made (:class:`InputError`, one line)."""

    backend: str = "taef2"
    latent_channels: int = 32
    image_size: int = 224

    def __post_init__(self) -> None:
        limits = {"latent_channels": MAX_LATENT_CHANNELS, "image_size": MAX_IMAGE_SIZE}
        for key, high in limits.items():
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
                raise InputError(f"{key} must be a whole number from 1 to {high}, not {value!r}")
        if self.image_size % 8:  # the autoencoders work at 1/8 resolution
            raise InputError(f"image_size must be a multiple of 8, not {self.image_size}")
        if not isinstance(self.backend, str):
            raise InputError(f"backend must be a name, not {self.backend!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def latent_to_mask(decoded: torch.Tensor) -> torch.Tensor:
    """Decoded image (B, 3, H, W) in about [-1, 1] -> soft mask (B, 1, H, W) in [0, 1]."""
    return ((decoded.mean(dim=1, keepdim=True) + 1) / 2).clamp(0, 1)


class WaveGMS(nn.Module):
    """The segmentation model. Only ``ewave`` and ``lmm`` hold trainable parameters; the
    autoencoder is attached, frozen, and never part of the saved weights."""

    def __init__(self, config: ModelConfig, autoencoder: FrozenAutoencoder | None = None):
        super().__init__()
        self.config = config
        self.ewave = WaveletEncoder(config.latent_channels)
        self.lmm = LatentMappingModel(config.latent_channels)
        self.autoencoder: FrozenAutoencoder | None = None
        if autoencoder is not None:
            self.attach(autoencoder)

    def attach(self, autoencoder: FrozenAutoencoder) -> WaveGMS:
        if autoencoder.latent_channels != self.config.latent_channels:
            raise ValueError(
                f"autoencoder {autoencoder.name!r} has {autoencoder.latent_channels} latent "
                f"channels, the model expects {self.config.latent_channels}"
            )
        self.autoencoder = autoencoder.to(next(self.parameters()).device)
        return self

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("autoencoder.")}

    def encode(self, images: torch.Tensor, sample: bool = False):
        """Images (B, 3, H, W) in [0, 1] -> (z, mu, logvar). ``sample`` draws z by the
        reparameterisation trick (training); otherwise z is the mean (deterministic)."""
        mu, logvar = self.ewave(images)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        return z, mu, logvar

    def forward(self, images: torch.Tensor, sample: bool = True) -> dict[str, torch.Tensor]:
        """Training forward: the latent ``z`` and each head's predicted mask latent."""
        z, mu, logvar = self.encode(images, sample=sample)
        return {"z": z, "mu": mu, "logvar": logvar, **self.lmm(z)}

    def decode_mask(self, latent: torch.Tensor) -> torch.Tensor:
        if self.autoencoder is None:
            raise RuntimeError("no autoencoder attached: call attach() first")
        return latent_to_mask(self.autoencoder.decode(latent))

    @torch.inference_mode()
    def predict_soft(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, S, S) in [0, 1] at the model size -> soft masks (B, 1, S, S)."""
        z, _, _ = self.encode(images, sample=False)
        return self.decode_mask(self.lmm(z)["out"])
