"""Progressive resizing: the first ``low_res_epochs`` epochs of a run train at ``low_res_size``.

A CPU economy: E_wave, the LMM and the frozen autoencoder are fully convolutional (the LMM's
attention has no positions), so the same weights train at any multiple of 16, and a step at
112 px costs about a quarter of one at 224. In those epochs the images, the masks of the Dice
loss and the frozen targets (z_image, z_mask) are all at the low size; the weights carry over
to the full-size epochs unchanged. Validation, the best model and inference stay at
``image_size``: only the batches the trainer draws change, here.
"""

from __future__ import annotations

import hashlib

import torch
from torch.nn import functional as F

from wavegms.core.progress import CancelToken, ProgressCallback
from wavegms.training.config import TrainConfig
from wavegms.training.targets import (
    Batch,
    CachedViews,
    FrozenTargets,
    OnlineTargets,
)

SHRINK_CHUNK = 64  # images shrunk at a time (a whole Kvasir set in float32 would be 530 MB)


def low_res_phase(config: TrainConfig, epoch: int) -> bool:
    """Whether epoch ``epoch`` (0-based) of the run trains at ``low_res_size``."""
    return config.low_res_size is not None and epoch < config.low_res_epochs


def train_size(config: TrainConfig, epoch: int) -> int:
    """The side of the images epoch ``epoch`` (0-based) trains on."""
    return config.low_res_size if low_res_phase(config, epoch) else config.image_size


def shrink(
    images: torch.Tensor, masks: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float images in [0, 1] and {0, 1} masks (N, C, S, S) -> ``size x size``.

    Area averaging: each low pixel is the mean of the pixels it covers, what a camera at that
    resolution would see (bilinear would skip pixels at a 2x step and alias the speckle of
    ultrasound). Masks go back to {0, 1}, foreground where at least half the area is: binary
    targets like the full-size ones, and a lesion's edge on a tie stays in the lesion."""
    images = F.interpolate(images, size=(size, size), mode="area")
    masks = (F.interpolate(masks, size=(size, size), mode="area") >= 0.5).to(masks.dtype)
    return images, masks


def shrink_uint8(
    images: torch.Tensor, masks: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`shrink` for uint8 images (0..255) and masks (0/1), in chunks; uint8 out."""
    small_images, small_masks = [], []
    for rows in torch.arange(len(images)).split(SHRINK_CHUNK):
        im, ma = shrink(images[rows].float().div_(255), masks[rows].float(), size)
        small_images.append(im.mul_(255).round_().to(torch.uint8))
        small_masks.append(ma.to(torch.uint8))
    return torch.cat(small_images), torch.cat(small_masks)


class LowResOnline:
    """Targets encoded every step, at the low size: the training set is shrunk once and each
    batch is augmented and encoded at the low size (the augmentations are relative to the
    image size, so they mean the same there, and cost a quarter)."""

    def __init__(self, full: OnlineTargets, size: int) -> None:
        self.full = full
        self.images, self.masks = shrink_uint8(full.images, full.masks, size)

    def prepare(self, progress: ProgressCallback | None, cancel: CancelToken | None) -> None:
        pass

    def batch(self, indices: torch.Tensor) -> Batch:
        return self.full.batch_of(self.images, self.masks, indices)


class LowResViews(CachedViews):
    """The full-size cached views, each shrunk (:func:`shrink`) and encoded once at the low size.

    Shrunk from the full-size views rather than augmented anew at the low size: a low-res
    epoch then sees exactly the views (flips, crops, jitter) of the full-size ones, the
    augmentation's random stream is drawn once, and box crops need not be cut again from the
    source files. Kept in a file of its own, whose fingerprint adds the size to the full one's."""

    def __init__(self, full: CachedViews, size: int) -> None:
        run_dir = full.path.parent
        args = (full.train_set, full.config, full.autoencoder, full.device, full.generator)
        super().__init__(*args, run_dir=run_dir)
        self.full, self.size = full, size
        self.path = run_dir / f"views{self.config.cached_views}-{size}px.safetensors"
        self.progress_text = f"encoding frozen targets at {size} px"

    def fingerprint(self) -> str:
        what = f"{super().fingerprint()} shrunk by area to {self.size}"
        return hashlib.sha256(what.encode()).hexdigest()

    def _view_source(self, view: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.full.views:
            raise RuntimeError("the full-size views are prepared before the low-size ones")
        rows = slice(view * len(self.train_set), (view + 1) * len(self.train_set))
        return self.full.views["image"][rows], self.full.views["mask"][rows]

    def _view_pixels(
        self, view: int, images: torch.Tensor, masks: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return shrink(images, masks, self.size)  # already augmented at full size


class ProgressiveTargets:
    """The run's :class:`FrozenTargets`, at the low size in the low-res epochs and at
    ``image_size`` after; :meth:`at_epoch` tells it which epoch comes next."""

    def __init__(self, config: TrainConfig, full: FrozenTargets, low: FrozenTargets | None):
        self.config, self.full, self.low = config, full, low
        self.epoch = 0

    def at_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _now(self) -> FrozenTargets:
        if self.low is not None and low_res_phase(self.config, self.epoch):
            return self.low
        return self.full

    def prepare(self, progress: ProgressCallback | None, cancel: CancelToken | None) -> None:
        """The full-size targets always (the low ones are made from them); the low-size ones
        only when the session starts in the low-res phase (a run resumed after it skips them)."""
        self.full.prepare(progress, cancel)
        if self.low is not None and low_res_phase(self.config, self.epoch):
            self.low.prepare(progress, cancel)

    def batch(self, indices: torch.Tensor) -> Batch:
        return self._now().batch(indices)


def with_low_res(config: TrainConfig, full: FrozenTargets) -> ProgressiveTargets:
    """A run's targets (``full``: the schedule ``config`` asks for, from
    ``targets.frozen_targets``) with their low-size twin when the run has low-res epochs."""
    low: FrozenTargets | None = None
    if config.low_res_size is not None and config.low_res_epochs > 0:
        if isinstance(full, CachedViews):
            low = LowResViews(full, config.low_res_size)
        elif isinstance(full, OnlineTargets):
            low = LowResOnline(full, config.low_res_size)
    return ProgressiveTargets(config, full, low)
