"""The soft-mask path (E_wave mean -> LMM ``out`` head -> decoder -> soft mask) as one module
that graph compilers and exporters can record for any batch size and image size.

Two parts are written in a form they can follow, with the same result:

* the Haar steps of E_wave's input are one strided 2x2 convolution per level (the wavelet
  library branches on shapes in Python, which fixes the batch size in a recorded graph);
* the TAEF2 decoder is the exactly rewritten one of :mod:`wavegms.runtime.decoder_rewrite`
  (``rewrite=False`` keeps the original decoder and ``latent_to_mask``).

Everything else runs the model's own modules, so trained weights are used as they are.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from wavegms.net.autoencoders.taef2 import TAEF2
from wavegms.net.model import WaveGMS
from wavegms.net.wavelets import LEVELS, haar_step
from wavegms.runtime.decoder_rewrite import rewrite_decoder


def haar_filters() -> torch.Tensor:
    """The Haar step as convolution weights (12, 3, 2, 2): output channel ``band * 3 + c``
    reads input channel ``c``, bands in :func:`~wavegms.net.wavelets.haar_step`'s order (LL,
    then the three detail bands). Read off ``haar_step`` itself from the four 2x2 impulses, so
    sign and order conventions are the wavelet library's."""
    impulses = torch.eye(4).reshape(4, 1, 2, 2).expand(4, 3, 2, 2).contiguous()
    approx, details = haar_step(impulses)  # (4, 3, 1, 1), (4, 9, 1, 1)
    response = torch.cat([approx, details], dim=1)[:, :, 0, 0]  # (impulse, band * 3 + c)
    weight = torch.zeros(12, 3, 2, 2)
    for out_channel in range(12):
        c = out_channel % 3
        weight[out_channel, c] = response[:, out_channel].reshape(2, 2)
    return weight


class SoftMaskPath(nn.Module):
    """Images (N, 3, H, W) in [0, 1], H and W multiples of 8 -> soft masks (N, 1, H, W)."""

    def __init__(self, model: WaveGMS, rewrite: bool = True) -> None:
        super().__init__()
        if model.autoencoder is None:
            raise ValueError("the model has no autoencoder attached")
        self.ewave = model.ewave
        self.lmm = model.lmm
        self.image_size = model.config.image_size
        self.register_buffer("haar", haar_filters())
        self.rewritten = rewrite and isinstance(model.autoencoder, TAEF2)
        if self.rewritten:
            self.decoder = rewrite_decoder(model.autoencoder.decoder)
        else:
            self.autoencoder = model.autoencoder
        self.eval()

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``WaveletEncoder.forward``'s mean, with the Haar steps as convolutions."""
        features = []
        approx = images
        for level, net in zip(LEVELS, self.ewave.levels, strict=True):
            bands = F.conv2d(approx, self.haar, stride=2)
            approx = bands[:, :3]
            pool = 2 ** (3 - level)  # levels 1, 2, 3 sit at 1/2, 1/4, 1/8
            f = net(bands / 2**level)
            features.append(F.avg_pool2d(f, pool) if pool > 1 else f)
        mu, _ = self.ewave.aggregate(torch.cat(features, dim=1)).chunk(2, dim=1)
        return mu

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        latent = self.lmm(self.encode(images))["out"]
        if self.rewritten:
            return self.decoder(latent)
        decoded = self.autoencoder.decode(latent)
        return ((decoded.mean(dim=1, keepdim=True) + 1) / 2).clamp(0, 1)
