"""Crop-and-rescale augmentation: training views that look like box mode's crops.

Box mode (:mod:`wavegms.inference.boxes`) segments a crop around a box drawn about a lesion,
so the lesion fills much of the model's input, unlike in the whole images a model is trained
on. A crop view is made the way box mode makes its input: the mask's bounding box, each side
moved out by a uniform random 0..``jitter`` pixels (the benchmark's box prompts), cropped with
a margin drawn uniformly from ``margins`` (:func:`~wavegms.inference.boxes.box_window`, the
one crop geometry), at the image's native size, normalised with the whole image's intensity
range, then brought to the model's size as inference brings its crops. Images whose mask is
empty have no box and keep their whole view.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch

from wavegms.core.errors import InputError
from wavegms.data.box_geometry import BoxWarning, CropWindow, box_window, jittered_box
from wavegms.data.images import read_image
from wavegms.data.intensities import intensity_range, to_rgb01
from wavegms.data.masks import read_mask
from wavegms.data.pairs import Pair
from wavegms.data.preprocess import mask_to_model_size, resize_image


def random_window(
    mask: np.ndarray, rng: np.random.Generator, jitter: int, margins: tuple[float, float]
) -> CropWindow:
    """Where a crop view of a non-empty bool mask (HxW) lies: its box grown by 0..``jitter``
    px per side (:func:`~wavegms.data.box_geometry.jittered_box`), a margin drawn uniformly
    from ``margins``, clipped to the image (the box's growth past the border is clipped
    quietly, as the benchmark clips it)."""
    box = jittered_box(mask, rng, jitter)
    margin = float(rng.uniform(margins[0], margins[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BoxWarning)
        return box_window(box, (int(mask.shape[0]), int(mask.shape[1])), margin)


def crop_view(
    image: np.ndarray,
    mask: np.ndarray,
    size: int,
    rng: np.random.Generator,
    jitter: int,
    margins: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """One crop view of a native-size image (HxW or HxWxC) and its non-empty bool mask (HxW):
    image float32 ``size x size x 3`` in [0, 1], mask bool ``size x size``."""
    if image.shape[:2] != mask.shape:
        raise InputError(f"image {image.shape[:2]} and mask {mask.shape} differ in size")
    rows, cols, _ = random_window(mask, rng, jitter, margins)
    crop = to_rgb01(image[rows, cols], value_range=intensity_range(image))
    return resize_image(crop, size), mask_to_model_size(mask[rows, cols], size)


def crop_views(
    pairs: Sequence[Pair],
    images: torch.Tensor,
    masks: torch.Tensor,
    p: float,
    rng: np.random.Generator,
    jitter: int,
    margins: tuple[float, float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """One view of a training set: each pair with a lesion is, with probability ``p``, a crop
    view (read again at native size); the rest keep their whole view, ``images`` (N,3,S,S)
    and ``masks`` (N,1,S,S) uint8 as :class:`~wavegms.training.dataset.InMemoryDataset`
    holds them. Returns new uint8 tensors of the same shapes."""
    if len(pairs) != len(images) or images.shape[0] != masks.shape[0]:
        raise InputError(f"{len(pairs)} pairs for {len(images)} images and {len(masks)} masks")
    size = int(images.shape[-1])
    out_images, out_masks = images.clone(), masks.clone()
    chosen = rng.random(len(pairs)) < p  # drawn at once: the same crops whatever p skips
    for i in np.flatnonzero(chosen):
        if not bool(masks[i].any()):
            continue
        mask = read_mask(pairs[i].mask)
        if not mask.any():  # empty at native size although not at the model's: keep whole
            continue
        image, small = crop_view(read_image(pairs[i].image), mask, size, rng, jitter, margins)
        pixels = np.round(image * 255.0).astype(np.uint8).transpose(2, 0, 1)
        out_images[i] = torch.from_numpy(pixels)
        out_masks[i, 0] = torch.from_numpy(small.astype(np.uint8))
    return out_images, out_masks
