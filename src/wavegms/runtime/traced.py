"""The CPU inference graph: the soft-mask path traced by TorchScript for one image at a time,
frozen and optimised for inference (convolutions fused with their activations and run in
oneDNN's blocked layout).

On the 2-core AVX2 machine this project is measured on, the 224 path runs in about 0.34 s per
image instead of 0.43-0.51 s eager, with soft masks equal to the eager model's within 1e-5
(docs/performance.md). A trace is specialised to its input shape, (1, 3, S, S) here, which is
all :class:`~wavegms.inference.segmenter.Segmenter` feeds it; building it takes a few seconds
once per loaded model.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from wavegms.net.model import WaveGMS


class _SoftMask(nn.Module):
    """``WaveGMS.predict_soft`` as a plain forward, which is what tracing records."""

    def __init__(self, model: WaveGMS) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        z, _, _ = self.model.encode(images, sample=False)
        return self.model.decode_mask(self.model.lmm(z)["out"])


def trace_soft_mask(model: WaveGMS) -> torch.jit.ScriptModule:
    """A frozen, inference-optimised graph: (1, 3, S, S) images in [0, 1] -> (1, 1, S, S)."""
    size = model.config.image_size
    example = torch.zeros(1, 3, size, size)
    with torch.no_grad(), warnings.catch_warnings():
        # The wavelet library branches on shapes in Python; for one fixed shape that is what
        # we want recorded, so its tracer warnings say nothing here.
        warnings.simplefilter("ignore")
        graph = torch.jit.trace(_SoftMask(model).eval(), example, check_trace=False)
        graph = torch.jit.optimize_for_inference(torch.jit.freeze(graph))
        graph(example)  # the first runs specialise the graph; keep them out of the user's click
        graph(example)
    return graph
