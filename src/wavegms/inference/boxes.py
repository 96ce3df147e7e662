"""Box prompts: segment inside one or more boxes drawn around lesions.

A box is ``x0, y0, x1, y1`` in pixel coordinates of the image (x: column, y: row), its corners
on pixel edges: the box ``0,0,10,5`` covers columns 0-9 and rows 0-4, as a rectangle drawn in
napari or given to MedSAM does. Each box is cropped with a margin (a share of its size on every
side, so that the model sees the lesion's border and some tissue around it), the crop is
segmented by the ordinary :class:`~wavegms.inference.segmenter.Segmenter` and its mask pasted
back; box ``k`` (in the order given) gets label ``k``. The crop is normalised with the whole
image's intensity range, so a dark crop is not stretched into a bright one. Optionally a
second model segments the whole image once, and each crop's soft mask is averaged with it
(``segment_boxes(whole=...)``).

Boxes that reach outside the image are clipped to it with a :class:`BoxWarning`; a box that is
empty or inverted (``x1 <= x0`` or ``y1 <= y0``), or lies wholly outside the image, is refused
with a one-line :class:`InputError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from wavegms.core.errors import InputError, WaveGMSError

# The crop geometry is the data layer's (training cuts the same crops); its names are
# re-exported here, where box mode's callers look for them.
from wavegms.data.box_geometry import DEFAULT_MARGIN as DEFAULT_MARGIN
from wavegms.data.box_geometry import Box as Box
from wavegms.data.box_geometry import BoxWarning as BoxWarning
from wavegms.data.box_geometry import box_window
from wavegms.data.box_geometry import check_box as check_box
from wavegms.data.box_geometry import clip_box as clip_box
from wavegms.data.box_geometry import crop_window as crop_window
from wavegms.data.box_geometry import jittered_box as jittered_box
from wavegms.data.box_geometry import parse_box as parse_box
from wavegms.data.intensities import intensity_range, to_rgb01

#: what is kept of a crop's mask: everything in the crop, only what lies inside the box, the
#: connected parts that reach into the box, or the largest connected part inside the box
KEEP = ("crop", "box", "touching", "largest")
DEFAULT_KEEP = "largest"


def keep_part(mask: np.ndarray, inside: np.ndarray, keep: str) -> np.ndarray:
    """What ``keep`` (:data:`KEEP`) keeps of a binary mask; ``inside`` marks the box."""
    if keep == "crop":
        return mask
    if keep == "box":
        return mask & inside
    from scipy import ndimage

    if keep == "largest":
        parts, count = ndimage.label(mask & inside, structure=np.ones((3, 3), bool))
        if count <= 1:
            return parts > 0
        return parts == 1 + int(np.argmax(np.bincount(parts.ravel())[1:]))
    parts, _ = ndimage.label(mask)
    touching = np.unique(parts[mask & inside])
    return np.isin(parts, touching[touching > 0])


class Crop(NamedTuple):
    """One box's crop: where it lies in the image, where the box lies in it, its soft mask."""

    rows: slice
    cols: slice
    inside: np.ndarray  # bool, crop-sized: the box's pixels
    soft: np.ndarray  # float32, crop-sized, in [0, 1]


def segment_crop(
    segmenter, image: np.ndarray, box: Box, margin: float, value_range: tuple[float, float]
) -> Crop:
    """The soft mask of the crop around ``box`` (normalised with the whole image's
    ``value_range``, see :func:`~wavegms.data.intensities.intensity_range`)."""
    shape = (int(image.shape[0]), int(image.shape[1]))
    rows, cols, pixels = box_window(box, shape, margin)
    crop = to_rgb01(image[rows, cols], value_range=value_range)
    _, soft = segmenter.segment(crop)
    inside = np.zeros(soft.shape, bool)
    inside[pixels[0] - rows.start : pixels[1] - rows.start,
           pixels[2] - cols.start : pixels[3] - cols.start] = True  # fmt: skip
    return Crop(rows, cols, inside, np.asarray(soft, np.float32))


class BoxResult(NamedTuple):
    """Labels (box ``k`` -> label ``k``, 0 background) and the soft mask that won each pixel."""

    labels: np.ndarray  # uint16 H x W
    soft: np.ndarray  # float32 H x W in [0, 1]: the winning box's soft mask, 0 off every mask


def _check_request(image: np.ndarray, boxes, margin: float, keep: str) -> list[Box]:
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] > 4):
        raise InputError(f"box prompts need one 2D image, not an array of shape {image.shape}")
    if keep not in KEEP:
        raise InputError(f"keep must be one of {', '.join(KEEP)}, not {keep!r}")
    if not 0 <= margin <= 10 or not math.isfinite(margin):
        raise InputError(f"the box margin must be a share in [0, 10], not {margin}")
    if not boxes:
        raise InputError("no box given")
    checked = [check_box(b) for b in boxes]
    if len(checked) >= np.iinfo(np.uint16).max:
        raise InputError(f"{len(checked)} boxes are more than one image's labels can hold")
    return checked


def whole_soft_mask(whole, image: np.ndarray) -> np.ndarray:
    """``whole``'s soft mask of the whole image, checked: the image's size, finite, in [0, 1]
    (a partner that answered otherwise would shift every crop's mask in silence)."""
    soft = np.asarray(whole.segment(image)[1], np.float32)
    if soft.shape != image.shape[:2]:
        raise WaveGMSError(
            f"the whole-image model gave a {soft.shape} mask for a {image.shape[:2]} image"
        )
    if not np.isfinite(soft).all() or soft.min() < 0 or soft.max() > 1:
        raise WaveGMSError("the whole-image model gave a soft mask outside [0, 1]")
    return soft


def segment_boxes(
    segmenter,
    image: np.ndarray,
    boxes: Sequence[Sequence[float]],
    *,
    margin: float = DEFAULT_MARGIN,
    keep: str = DEFAULT_KEEP,
    threshold: float | None = None,
    whole=None,
) -> BoxResult:
    """Segment a 2D image (H x W or H x W x C) inside each of ``boxes``: crop with ``margin``,
    segment the crop with ``segmenter`` (a :class:`Segmenter` or anything with its
    ``threshold`` and ``segment(image)``), threshold it (``threshold``, else the segmenter's),
    keep what ``keep`` says (:data:`KEEP`) and paste it back. ``whole``: a second segmenter
    (anything with ``segment(image)``) that segments the whole image once (not once per box);
    each crop's soft mask is then averaged with that whole-image soft mask over the crop, two
    views of the lesion instead of one (which models the CLI and the dock pair by default:
    :func:`wavegms.store.catalogue.box_models`). Where crops overlap, a pixel goes to the box
    whose soft mask is highest there."""
    image = np.asarray(image)
    checked = _check_request(image, boxes, margin, keep)
    threshold = segmenter.threshold if threshold is None else threshold
    if not 0 <= threshold <= 1:
        raise InputError(f"threshold must be in [0, 1], got {threshold}")
    shape = (int(image.shape[0]), int(image.shape[1]))
    value_range = intensity_range(image)
    whole_soft = None if whole is None else whole_soft_mask(whole, image)
    labels = np.zeros(shape, np.uint16)
    best = np.zeros(shape, np.float32)  # the soft mask of the label each pixel has
    for label, box in enumerate(checked, start=1):
        crop = segment_crop(segmenter, image, box, margin, value_range)
        rows, cols = crop.rows, crop.cols
        soft = crop.soft if whole_soft is None else (crop.soft + whole_soft[rows, cols]) / 2
        mask = keep_part(soft > threshold, crop.inside, keep)
        won = mask & ((labels[rows, cols] == 0) | (soft > best[rows, cols]))
        labels[rows, cols][won] = label
        best[rows, cols][won] = soft[won]
    return BoxResult(labels, best)
