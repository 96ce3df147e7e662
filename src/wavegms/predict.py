"""Prediction: one image, a stack, or a folder -> binary and soft masks at the input's size.

Images of any size are resized to the model size (aspect ignored, as in training); the soft mask
is resized back bilinearly and then thresholded, so edges follow the soft mask, not a blocky
224-pixel grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .errors import InputError
from .evaluate import resize_soft
from .io import to_rgb01
from .progress import CancelToken, ProgressCallback, check_cancel, report


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """float32 HxWx3 in [0, 1] -> size x size x 3, anti-aliased bilinear (as in training)."""
    if image.shape[:2] == (size, size):
        return image.astype(np.float32, copy=False)
    from skimage.transform import resize

    out = resize(image, (size, size), order=1, anti_aliasing=True, preserve_range=True)
    return np.clip(out, 0, 1).astype(np.float32)


def split_planes(image: np.ndarray, rgb: bool | None = None) -> tuple[np.ndarray, tuple, bool]:
    """View any array as a list of 2D planes: (planes (N, H, W[, C]), leading shape, rgb).

    ``rgb=None`` guesses: a last axis of 3 or 4 on a 3D+ array is colour (napari's rule).
    """
    image = np.asarray(image)
    if image.ndim < 2 or image.size == 0:
        raise InputError(f"expected a 2D image or a stack of them, got shape {image.shape}")
    if rgb is None:
        rgb = image.ndim >= 3 and image.shape[-1] in (3, 4)
    spatial = 3 if rgb else 2
    if image.ndim < spatial:
        raise InputError(f"an RGB image needs 3 dimensions, got shape {image.shape}")
    lead = image.shape[: image.ndim - spatial]
    return image.reshape((-1, *image.shape[image.ndim - spatial :])), lead, rgb


class Segmenter:
    """A loaded model plus the settings it runs with. Thread-compatible, not thread-safe:
    use one Segmenter per worker."""

    def __init__(self, model, device: str = "auto", threshold: float = 0.5, batch_size: int = 8):
        from .devices import resolve_device

        if not 0 <= threshold <= 1:
            raise InputError(f"threshold must be in [0, 1], got {threshold}")
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.threshold = threshold
        self.batch_size = batch_size

    @classmethod
    def load(cls, name_or_path: str | Path, device: str = "auto", **kwargs) -> Segmenter:
        from .registry import load_segmentation_model

        return cls(load_segmentation_model(name_or_path, device), device, **kwargs)

    @property
    def image_size(self) -> int:
        return self.model.config.image_size

    def predict_soft(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """float32 HxWx3 images in [0, 1] -> (B, S, S) soft masks at the model size."""
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = [
                resize_image(im, self.image_size) for im in images[start : start + self.batch_size]
            ]
            batch = torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2).to(self.device)
            out.append(self.model.predict_soft(batch)[:, 0].float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.image_size, self.image_size))

    def segment(
        self,
        image: np.ndarray,
        rgb: bool | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Any 2D image or stack -> (binary mask bool, soft mask float32), both shaped like the
        input without its colour axis. Stacks are segmented plane by plane."""
        planes, lead, rgb = split_planes(image, rgb)
        height, width = planes.shape[1:3]
        binary = np.zeros((len(planes), height, width), dtype=bool)
        soft = np.zeros((len(planes), height, width), dtype=np.float32)
        for start in range(0, len(planes), self.batch_size):
            check_cancel(cancel)
            idx = range(start, min(start + self.batch_size, len(planes)))
            small = self.predict_soft([to_rgb01(planes[i]) for i in idx])
            for i, s in zip(idx, small, strict=False):
                soft[i] = resize_soft(s, (height, width))
                binary[i] = soft[i] > self.threshold
            report(progress, "segment", idx[-1] + 1, len(planes))
        shape = (*lead, height, width)
        return binary.reshape(shape), soft.reshape(shape)
