"""Boxes around lesions in pixel coordinates, and the crop box mode makes of one.

A box is ``x0, y0, x1, y1`` in pixel coordinates of the image (x: column, y: row), its corners
on pixel edges: the box ``0,0,10,5`` covers columns 0-9 and rows 0-4, as a rectangle drawn in
napari or given to MedSAM does. The crop geometry lives here, in the data layer, because box
mode's inference (:mod:`wavegms.inference.boxes`) and the crop augmentation of training
(:mod:`wavegms.training.box_crops`) must cut the very same crops.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from wavegms.core.errors import InputError

#: the margin around a box, as a share of its width (height) on each side; box mode's
#: defaults were chosen on the 52 BUSI validation images carved from the train names, which
#: no shipped model trained on (docs/performance.md, "Box prompts, second round")
DEFAULT_MARGIN = 1.5


class BoxWarning(UserWarning):
    """A box was usable, but not as given (it reached outside the image and was clipped)."""


class Box(NamedTuple):
    """A box in pixel-edge coordinates: columns ``x0 .. x1 - 1``, rows ``y0 .. y1 - 1``."""

    x0: float
    y0: float
    x1: float
    y1: float

    def __str__(self) -> str:
        return ",".join(f"{v:g}" for v in self)


def check_box(box: Sequence[float]) -> Box:
    """A box from four finite numbers; empty or inverted boxes raise :class:`InputError`."""
    values = tuple(float(v) for v in box)
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InputError(f"a box is four finite numbers x0,y0,x1,y1, not {box!r}")
    b = Box(*values)
    if b.x1 <= b.x0 or b.y1 <= b.y0:
        raise InputError(
            f"box {b} is empty or inverted: it needs x0 < x1 and y0 < y1 (x0,y0,x1,y1)"
        )
    return b


def parse_box(text: str) -> Box:
    """``"x0,y0,x1,y1"`` -> :class:`Box` (spaces allowed), else one-line :class:`InputError`."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InputError(f"box {text!r} is not four numbers x0,y0,x1,y1") from None
    if len(values) != 4:
        raise InputError(f"box {text!r} has {len(values)} numbers; give four: x0,y0,x1,y1")
    return check_box(values)


def clip_box(box: Box, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The whole pixels a box covers inside an image of ``shape`` (height, width), as
    ``(row0, row1, col0, col1)``: edges rounded outwards, then clipped (with a
    :class:`BoxWarning`). A box with no pixel inside the image raises :class:`InputError`."""
    height, width = shape
    col0, row0 = math.floor(box.x0), math.floor(box.y0)
    col1, row1 = math.ceil(box.x1), math.ceil(box.y1)
    clipped = (max(row0, 0), min(row1, height), max(col0, 0), min(col1, width))
    if clipped[1] <= clipped[0] or clipped[3] <= clipped[2]:
        raise InputError(f"box {box} lies outside the image ({width} x {height} pixels)")
    if clipped != (row0, row1, col0, col1):
        warnings.warn(
            f"box {box} reaches outside the image ({width} x {height} pixels); clipped to "
            f"{clipped[2]},{clipped[0]},{clipped[3]},{clipped[1]}",
            BoxWarning,
            stacklevel=3,
        )
    return clipped


def crop_window(
    pixels: tuple[int, int, int, int], shape: tuple[int, int], margin: float
) -> tuple[slice, slice]:
    """The crop around a box's pixels: ``margin`` of its height (width) added above and below
    (left and right), at least one pixel where the margin is positive, clipped to the image."""
    row0, row1, col0, col1 = pixels
    pad_r = math.ceil(margin * (row1 - row0)) if margin > 0 else 0
    pad_c = math.ceil(margin * (col1 - col0)) if margin > 0 else 0
    height, width = shape
    return (
        slice(max(row0 - pad_r, 0), min(row1 + pad_r, height)),
        slice(max(col0 - pad_c, 0), min(col1 + pad_c, width)),
    )


class CropWindow(NamedTuple):
    """Where a box's crop lies in the image and where the box's pixels lie in the image."""

    rows: slice
    cols: slice
    pixels: tuple[int, int, int, int]  # the box's (row0, row1, col0, col1), clipped


def box_window(box: Box, shape: tuple[int, int], margin: float) -> CropWindow:
    """The crop of ``box`` with ``margin`` (:func:`clip_box`, then :func:`crop_window`): the
    one crop geometry of box mode, shared by inference and training (crop augmentation)."""
    pixels = clip_box(box, shape)
    rows, cols = crop_window(pixels, shape, margin)
    return CropWindow(rows, cols, pixels)


def jittered_box(truth: np.ndarray, rng: np.random.Generator, jitter: int) -> Box:
    """The bounding box (pixel edges) of a non-empty mask, each side moved out by a uniform
    random 0..``jitter`` pixels (MedSAM's protocol for box prompts; not clipped)."""
    rows = np.flatnonzero(np.any(truth, axis=1))
    cols = np.flatnonzero(np.any(truth, axis=0))
    if not rows.size:
        raise InputError("an empty mask has no bounding box")
    grow = rng.integers(0, int(jitter) + 1, size=4)
    return Box(
        float(cols[0] - grow[0]), float(rows[0] - grow[1]),
        float(cols[-1] + 1 + grow[2]), float(rows[-1] + 1 + grow[3]),
    )  # fmt: skip
