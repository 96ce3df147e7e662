"""The frozen autoencoder's targets for each training batch, on one of two schedules.

The losses compare E_wave/LMM outputs with the frozen encoder's latents of the image (z_I,
alignment) and of the mask (z_M, latent loss). Both schedules give a :class:`Batch` of
images, masks and those targets on the device, and differ only in when the encoder runs:

- :class:`OnlineTargets` augments every batch on the device and encodes its targets there:
  the paper's schedule, and the right one on a GPU;
- :class:`CachedViews` encodes ``cached_views`` views of every training image once (view 0
  unaugmented, the rest augmented), keeps them in the run folder, and samples one view per
  image per batch: the CPU schedule, where the encoder would otherwise dominate each step.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from wavegms.core.files import atomic_write
from wavegms.core.progress import CancelToken, ProgressCallback, check_cancel, report
from wavegms.training.augment import augment_batch
from wavegms.training.config import TrainConfig
from wavegms.training.dataset import InMemoryDataset
from wavegms.training.precision import frozen_autocast, frozen_in_bf16


class Batch(NamedTuple):
    images: torch.Tensor  # N,3,S,S in [0, 1]
    masks: torch.Tensor  # N,1,S,S in {0, 1}
    z_image: torch.Tensor  # frozen latent of the image (alignment target)
    z_mask: torch.Tensor  # frozen latent of the mask (latent-loss target)


class FrozenTargets(Protocol):
    def prepare(self, progress: ProgressCallback | None, cancel: CancelToken | None) -> None:
        """Work done once before the first epoch of a session (may raise Cancelled)."""

    def batch(self, indices: torch.Tensor) -> Batch:
        """The training images ``indices`` with their targets, on the device."""


@torch.no_grad()
def encode_targets(
    autoencoder, images: torch.Tensor, masks: torch.Tensor, config: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """(z_image, z_mask) in float32 and NCHW (a channels_last encoder gives NHWC, which the
    cached views' file cannot hold); masks are encoded as 3-channel images in [-1, 1]."""
    with frozen_autocast(images.device, config):
        z_image = autoencoder.encode(images * 2 - 1).float().contiguous()
        z_mask = autoencoder.encode(masks.expand(-1, 3, -1, -1) * 2 - 1).float().contiguous()
    return z_image, z_mask


class _TargetsOf:
    """What both schedules hold: the training set, the run's settings, the frozen encoder, the
    device, and the trainer's (CPU) generator, which draws the augmentations: augment_batch
    takes its per-sample decisions on the host anyway, the ops run on the device, and one
    stream (saved in the checkpoint) makes a run the same on every device and on resume."""

    def __init__(
        self,
        train_set: InMemoryDataset,
        config: TrainConfig,
        autoencoder,
        device: torch.device | str,
        generator: torch.Generator,
    ) -> None:
        self.train_set, self.config, self.autoencoder = train_set, config, autoencoder
        self.device, self.generator = torch.device(device), generator


class OnlineTargets(_TargetsOf):
    """Augment each batch on the device, then encode its targets."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        # The whole set moves to the device once (uint8: 880 Kvasir pairs at 224 are 130 MB).
        self.images = self.train_set.images.to(self.device)
        self.masks = self.train_set.masks.to(self.device)

    def prepare(self, progress: ProgressCallback | None, cancel: CancelToken | None) -> None:
        pass

    def batch(self, indices: torch.Tensor) -> Batch:
        return self.batch_of(self.images, self.masks, indices)

    def batch_of(self, images: torch.Tensor, masks: torch.Tensor, indices: torch.Tensor) -> Batch:
        """Rows ``indices`` of the uint8 ``images`` and ``masks`` (the training set, at any
        size) augmented, with their targets."""
        rows = indices.to(self.device)
        images = images[rows].float().div_(255)
        masks = masks[rows].float()
        if self.config.augment:
            images, masks = augment_batch(
                images, masks, self.config.augmentation, generator=self.generator
            )
        z_image, z_mask = encode_targets(self.autoencoder, images, masks, self.config)
        return Batch(images, masks, z_image, z_mask)


class CachedViews(_TargetsOf):
    """Encode ``cached_views`` views of each training image once; sample one per batch row."""

    def __init__(self, *args, run_dir: Path) -> None:
        super().__init__(*args)
        self.path = run_dir / f"views{self.config.cached_views}.safetensors"
        self.progress_text = "encoding frozen targets"
        self.views: dict[str, torch.Tensor] = {}

    def fingerprint(self) -> str:
        """What the views depend on: the training images (names, pixels), the size, the seed
        and the augmentation. Views made for anything else are never reused."""
        c, digest = self.config, hashlib.sha256()
        what = [self.train_set.names, c.image_size, c.seed, c.augment, str(c.augmentation)]
        if c.box_crops > 0:  # only then, so that views made before crops existed still fit
            what.append([c.box_crops, c.box_jitter, list(c.box_margins)])
        if frozen_in_bf16(self.device, c):  # likewise: fp32 views stay what they were
            what.append("encoded in bf16")
        digest.update(json.dumps(what).encode())
        digest.update(self.train_set.images.numpy().tobytes())
        digest.update(self.train_set.masks.numpy().tobytes())
        return digest.hexdigest()

    def _saved_views_fit(self, fingerprint: str) -> bool:
        with safe_open(self.path, "pt") as f:
            saved = (f.metadata() or {}).get("fingerprint")
            rows = f.get_slice("image").get_shape()[0]
        if saved is not None:
            return saved == fingerprint
        # Views saved before fingerprints were recorded: reused only when their count fits.
        return rows == self.config.cached_views * len(self.train_set)

    def prepare(self, progress: ProgressCallback | None, cancel: CancelToken | None) -> None:
        """Load the views of this run folder, or compute and save them (deterministic from the
        seed, with a generator of their own, so the training RNG stream is the same either
        way). Saved views made from other images or settings are made again, with a warning."""
        fingerprint = self.fingerprint()
        if self.path.exists():
            if self._saved_views_fit(fingerprint):
                self.views = load_file(self.path)
                return
            warnings.warn(
                f"{self.path.name} in {self.path.parent} was made from other training images or "
                "settings; encoding the views again",
                stacklevel=2,
            )
        gen = torch.Generator().manual_seed(self.config.seed + 1)
        chunks = [
            self.encode_view(view, gen, progress, cancel)
            for view in range(self.config.cached_views)
        ]
        views = {k: torch.cat([chunk[k] for chunk in chunks]) for k in chunks[0]}
        header = {"fingerprint": fingerprint}
        atomic_write(self.path, lambda t: save_file(views, t, metadata=header), ".safetensors")
        self.views = views

    def encode_view(
        self,
        view: int,
        gen: torch.Generator,
        progress: ProgressCallback | None,
        cancel: CancelToken | None,
    ) -> dict[str, torch.Tensor]:
        """One view of every training image with its frozen targets (views in order share
        ``gen``, which only augmented views draw from)."""
        c, n = self.config, len(self.train_set)
        source_images, source_masks = self._view_source(view)
        chunks: dict[str, list[torch.Tensor]] = {
            "image": [],
            "mask": [],
            "z_image": [],
            "z_mask": [],
        }
        for indices in torch.arange(n).split(c.batch_size):
            check_cancel(cancel)
            images = source_images[indices].float().div_(255)
            masks = source_masks[indices].float()
            images, masks = self._view_pixels(view, images, masks, gen)
            z_image, z_mask = encode_targets(
                self.autoencoder, images.to(self.device), masks.to(self.device), c
            )
            chunks["image"].append(images.mul(255).round().to(torch.uint8))
            chunks["mask"].append(masks.to(torch.uint8))
            chunks["z_image"].append(z_image.half().cpu())
            chunks["z_mask"].append(z_mask.half().cpu())
            done = view * n + int(indices[-1]) + 1
            report(progress, "targets", done, c.cached_views * n, self.progress_text)
        return {k: torch.cat(v) for k, v in chunks.items()}

    def _view_pixels(
        self, view: int, images: torch.Tensor, masks: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch of view ``view`` as it is encoded: augmented, but for view 0."""
        if view > 0 and self.config.augment:
            return augment_batch(images, masks, self.config.augmentation, generator=gen)
        return images, masks

    def _view_source(self, view: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The uint8 images and masks view ``view`` is made from: the training set, or for an
        augmented view with ``box_crops``, that share of crop views (training.box_crops), drawn
        from a generator of the view's own (the same crops on every device and run)."""
        c, data = self.config, self.train_set
        if view == 0 or not c.augment or c.box_crops <= 0:
            return data.images, data.masks
        from wavegms.training.box_crops import crop_views

        rng = np.random.default_rng([c.seed, view])
        return crop_views(
            data.pairs, data.images, data.masks, c.box_crops, rng, c.box_jitter, c.box_margins
        )

    def batch(self, indices: torch.Tensor) -> Batch:
        view = torch.randint(self.config.cached_views, (len(indices),), generator=self.generator)
        rows = view * len(self.train_set) + indices
        v = self.views
        images = v["image"][rows].float().div_(255)
        masks = v["mask"][rows].float()
        z_image, z_mask = v["z_image"][rows].float(), v["z_mask"][rows].float()
        return Batch(*(t.to(self.device) for t in (images, masks, z_image, z_mask)))


def frozen_targets(
    config: TrainConfig,
    train_set: InMemoryDataset,
    autoencoder,
    device: torch.device,
    generator: torch.Generator,
    run_dir: Path,
) -> FrozenTargets:
    """The schedule the config asks for: cached views when ``cached_views`` > 0."""
    if config.augment and config.cached_views == 1:
        # Said, not refused: earlier runs and their carried checkpoints hold this setting.
        warnings.warn(
            "augment does nothing with cached_views 1: the one cached view is the "
            "unaugmented image (cached_views 0 augments every batch, 2 or more keeps "
            "augmented views)",
            stacklevel=2,
        )
    if config.cached_views:
        return CachedViews(train_set, config, autoencoder, device, generator, run_dir=run_dir)
    return OnlineTargets(train_set, config, autoencoder, device, generator)
