"""One optimisation step of a run: forward, the three losses, backward, optimiser, average.

Where it runs in bf16: ``training.precision``.
"""

from __future__ import annotations

import torch

from wavegms.core.progress import CancelToken, check_cancel
from wavegms.net.model import WaveGMS
from wavegms.training.config import TrainConfig
from wavegms.training.ema import WeightAverage
from wavegms.training.losses import alignment_loss, latent_loss, segmentation_loss
from wavegms.training.precision import frozen_autocast, trainable_autocast
from wavegms.training.targets import Batch


class TrainStep:
    """Calls to it train ``params`` of ``model`` (through ``forward``: DDP may wrap it) on one
    batch; ``decode`` says whether this batch also pays for the decoded Dice loss."""

    def __init__(
        self,
        model: WaveGMS,
        forward: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        config: TrainConfig,
        device: torch.device,
        cancel: CancelToken | None,
        average: WeightAverage | None,
    ) -> None:
        self.model, self.forward, self.optimizer = model, forward, optimizer
        self.config, self.device, self.cancel, self.average = config, device, cancel, average

    def _decode(self, latent: torch.Tensor) -> torch.Tensor:
        # fp32 in: E_wave's bf16 latent would meet the fp32 decoder's weights where the
        # decoder runs without autocast (autocast, where on, casts it back to bf16 itself)
        with frozen_autocast(self.device, self.config):
            return self.model.decode_mask(latent.float()).float()

    def __call__(self, batch: Batch, decode: bool) -> dict[str, float]:
        c = self.config
        with trainable_autocast(self.device, c):
            out = self.forward(batch.images, sample=True)
            check_cancel(self.cancel)  # before the segmentation loss decodes (the dearest part)
            l_lm = latent_loss(out, batch.z_mask)
            l_align = alignment_loss(out["z"], batch.z_image)
            l_seg = (
                segmentation_loss(out, batch.masks, self._decode, c.seg_heads)
                if c.seg_heads and decode
                else torch.zeros((), device=self.device)
            )
            loss = l_seg + l_lm + c.align_weight * l_align
        # Stop acts within a fraction of a batch: the backward pass costs about as much as
        # the forward one, and a step cut here leaves the weights as the last step made them.
        check_cancel(self.cancel)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.average is not None:
            self.average.update()
        return {
            "loss": loss.item(),
            "seg": l_seg.item(),
            "latent": l_lm.item(),
            "align": l_align.item(),
        }
