"""TAESD (the paper's autoencoder, SD1.x latent space, 4 channels) through diffusers.

diffusers is imported lazily: it is optional and costs seconds to import.
"""

from __future__ import annotations

from pathlib import Path

import torch

from wavegms.core.errors import WeightsNotFoundError
from wavegms.net.autoencoders import FrozenAutoencoder

HUB_ID = "madebyollin/taesd"


class TAESD(FrozenAutoencoder):
    """Wraps ``diffusers.AutoencoderTiny``, whose conventions already match ours ([-1, 1])."""

    name = "taesd"

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.latent_channels = int(model.config.latent_channels)
        self.freeze()

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode(images).latents

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.model.decode(latents).sample


def load_taesd(path: str | Path | None = None) -> TAESD:
    """From a local diffusers folder, or a hub id (default ``madebyollin/taesd``)."""
    from wavegms.core.extras import require

    AutoencoderTiny = require("diffusers", "the taesd backend").AutoencoderTiny
    source = str(path) if path is not None else HUB_ID
    try:
        model = AutoencoderTiny.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise WeightsNotFoundError(
            f"could not load TAESD from {source!r}: {err}\n"
            "Give a local folder saved by diffusers (AutoencoderTiny.save_pretrained) or make "
            f"the hub id {HUB_ID!r} reachable."
        ) from err
    return TAESD(model.float())
