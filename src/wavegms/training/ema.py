"""An exponential moving average of the trainable weights (Polyak averaging).

With small batches on a CPU the weights after the last step follow that step's noise; their
running average is a smoother model. When a run asks for it (``ema_decay`` > 0) the average is
what is validated, selected as the best epoch, and shipped; training itself steps the raw
weights. The average travels in checkpoints as ``ema.<parameter name>`` tensors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

PREFIX = "ema."


class WeightAverage:
    """The average of ``model``'s trainable parameters; updated after every optimiser step."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must lie strictly between 0 and 1, not {decay}")
        self.decay = decay
        self.named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for _, p in self.named]

    @torch.no_grad()
    def update(self) -> None:
        live = [p.detach() for _, p in self.named]
        torch._foreach_lerp_(self.shadow, live, 1 - self.decay)

    @contextmanager
    @torch.no_grad()
    def applied(self) -> Iterator[None]:
        """The model carries the average inside the block, its own weights again after."""
        saved = [p.detach().clone() for _, p in self.named]
        for (_, p), s in zip(self.named, self.shadow, strict=True):
            p.copy_(s)
        try:
            yield
        finally:
            for (_, p), s in zip(self.named, saved, strict=True):
                p.copy_(s)

    def tensors(self) -> dict[str, torch.Tensor]:
        pairs = zip(self.named, self.shadow, strict=True)
        return {f"{PREFIX}{n}": s.detach().cpu() for (n, _), s in pairs}

    @torch.no_grad()
    def load(self, tensors: dict[str, torch.Tensor]) -> bool:
        """Take the average from checkpoint ``tensors``; False (average = the weights) when
        they hold none, as a checkpoint of a run without EMA does."""
        if not any(k.startswith(PREFIX) for k in tensors):
            self.shadow = [p.detach().clone() for _, p in self.named]
            return False
        for (n, _), s in zip(self.named, self.shadow, strict=True):
            s.copy_(tensors[f"{PREFIX}{n}"].to(s.dtype))
        return True
