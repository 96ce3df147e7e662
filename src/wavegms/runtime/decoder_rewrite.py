"""Exact deploy-time rewrites of the frozen TAEF2 decoder, for the soft-mask path only.

The soft mask is ``clamp(mean over RGB of decoder(latent) * 2 - 1, then (x + 1) / 2)``, which is
``clamp(mean over RGB of decoder(latent), 0, 1)``. Two rewrites make that cheaper with the same
result (up to float rounding):

* **One output channel.** The last convolution (64 -> 3) is linear, so the mean of its three
  outputs is one convolution (64 -> 1) with the mean of its weights and biases.
* **Upsample + conv as four phase convolutions.** A nearest x2 upsample followed by a 3x3
  convolution (padding 1) gives, at output pixel (2i + a, 2j + b), a 3x3 sum over input rows
  {i-1, i, i} (a = 0) or {i, i, i+1} (a = 1), likewise for columns: rows that coincide add their
  weights. Each of the four output phases is therefore a 2x2 convolution on the small input,
  and the four are interleaved by a pixel shuffle: 16 instead of 36 multiply-adds per input
  pixel and channel pair (2.25x fewer), the largest saving being the layer at full resolution.

:func:`rewrite_decoder` returns a rewritten copy; the original module is never changed.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from wavegms.net.autoencoders.taef2 import Clamp

# For output phase a (0 or 1): which 2 input rows (as offsets -1/0/+1 into a 3x3 window) the
# three kernel rows land on. Row k of the 3x3 kernel reads upsampled row 2i + a + k - 1, i.e.
# input row i + floor((a + k - 1) / 2).
_TAPS = {0: ((0,), (1, 2)), 1: ((0, 1), (2,))}
# Padding (left, right, top, bottom) so that a 2x2 convolution reads the rows/columns above.
_PAD = {(a, b): (1 - b, b, 1 - a, a) for a in (0, 1) for b in (0, 1)}


def phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """3x3 weights (O, I, 3, 3) -> the four 2x2 phase kernels (4, O, I, 2, 2), phase a*2+b."""
    phases = []
    for a in (0, 1):
        rows = torch.stack([weight[:, :, list(k)].sum(2) for k in _TAPS[a]], dim=2)
        for b in (0, 1):
            phases.append(torch.stack([rows[..., list(k)].sum(-1) for k in _TAPS[b]], dim=-1))
    return torch.stack(phases)


class UpsampleConvPhases(nn.Module):
    """``conv3x3(upsample_nearest_x2(x))`` computed as four 2x2 convolutions on ``x``."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1):
            raise ValueError("only a 3x3, stride 1, padding 1 convolution can be rewritten")
        if conv.groups != 1 or conv.dilation != (1, 1):
            raise ValueError("only an ungrouped, undilated convolution can be rewritten")
        self.register_buffer("kernels", phase_kernels(conv.weight.detach().float()))
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        outs = [
            F.conv2d(F.pad(x, _PAD[(a, b)]), self.kernels[a * 2 + b], self.bias)
            for a in (0, 1)
            for b in (0, 1)
        ]
        # pixel_shuffle reads channel c * 4 + a * 2 + b into output pixel (2i + a, 2j + b).
        stacked = torch.stack(outs, dim=2).reshape(n, -1, h, w)
        return F.pixel_shuffle(stacked, 2)


def mean_channel_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """A convolution whose single output is the mean of ``conv``'s outputs (exact: linear)."""
    out = nn.Conv2d(
        conv.in_channels, 1, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, bias=conv.bias is not None,
    )  # fmt: skip
    with torch.no_grad():
        out.weight.copy_(conv.weight.mean(dim=0, keepdim=True))
        if conv.bias is not None:
            out.bias.copy_(conv.bias.mean().reshape(1))
    return out.requires_grad_(False)


class SoftMaskHead(nn.Module):
    """The tail of the soft-mask path: clamp to [0, 1] (what ``latent_to_mask`` does after the
    decoder, with the x2-1 / +1/2 pair cancelled)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0.0, 1.0)


def rewrite_decoder(decoder: nn.Sequential) -> nn.Sequential:
    """A copy of a TAEF2 decoder (``[0, 1]``-image output) that maps latents straight to the
    soft mask (N, 1, H, W) in [0, 1], with both rewrites applied. Raises ``ValueError`` for a
    module of another layout (nothing is rewritten silently)."""
    layers = list(copy.deepcopy(decoder))
    if not layers or not isinstance(layers[0], Clamp) or not isinstance(layers[-1], nn.Conv2d):
        raise ValueError("not a TAEF2 decoder: expected Clamp first and a convolution last")
    out: list[nn.Module] = []
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, nn.Upsample):
            if layer.mode != "nearest" or layer.scale_factor not in (2, 2.0, (2.0, 2.0)):
                raise ValueError(f"cannot rewrite {layer}: only nearest x2 upsampling")
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if not isinstance(nxt, nn.Conv2d):
                raise ValueError("an upsample must be followed by a convolution to be rewritten")
            out.append(UpsampleConvPhases(nxt))
            i += 2
            continue
        out.append(layer)
        i += 1
    out[-1] = mean_channel_conv(out[-1])
    out.append(SoftMaskHead())
    return nn.Sequential(*out).eval().requires_grad_(False)
