"""One way to take pixels to the model and back, for training, inference and scoring alike.

- image -> model input: normalise to [0,1] RGB (:func:`to_rgb01`), reduce very large planes band
  by band, resize to ``size x size`` (aspect ignored, anti-aliased bilinear);
- mask -> model size: nearest neighbour, then >= 0.5 (the scoring protocol of
  ``wavegms.scoring.scores``);
- soft mask -> image size: bilinear, clipped to [0,1], memory-lean for huge images.

Very large planes (more than :data:`LARGE_PLANE_PIXELS`) are box-averaged band by band before a
float copy is made, and the soft mask is interpolated straight into its output array. The masks
themselves must fit into memory: a stack whose masks would not is refused with
:class:`InputError` before anything is allocated.
"""

from __future__ import annotations

import numpy as np

from wavegms.core.errors import InputError
from wavegms.data.intensities import as_image_array, intensity_range, to_rgb01

#: planes with more pixels than this (e.g. 2900x2900) take the memory-lean paths
LARGE_PLANE_PIXELS = 1 << 23


#: about how many values one band of a large plane holds while it is converted to float
BAND_VALUES = 1 << 22


#: the share of the free memory the masks of one ``segment`` call may take
MEMORY_SHARE = 0.5


#: bytes per pixel of ``segment``'s outputs: a float32 soft mask and a bool binary mask
MASK_BYTES_PER_PIXEL = 5


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """float32 HxWx3 in [0, 1] -> size x size x 3, anti-aliased bilinear (as in training)."""
    if image.shape[:2] == (size, size):
        return image.astype(np.float32, copy=False)
    from skimage.transform import resize

    out = resize(image, (size, size), order=1, anti_aliasing=True, preserve_range=True)
    return np.clip(out, 0, 1).astype(np.float32)


def _box_reduce(plane: np.ndarray, factor: int) -> np.ndarray:
    """Normalise a large 2D image (as :func:`to_rgb01` would) and average it over
    ``factor x factor`` blocks (the last ones partial), band by band, so no full-size float
    copy ever exists: an 8000x8000 grey image would need 1.5 GB as float64 RGB."""
    value_range = intensity_range(plane)
    height, width = plane.shape[:2]
    band_rows = factor * max(1, BAND_VALUES // (factor * width * 3))
    col_starts = np.arange(0, width, factor)
    col_counts = np.diff(np.append(col_starts, width)).astype(np.float64)
    bands = []
    for top in range(0, height, band_rows):
        band = to_rgb01(plane[top : top + band_rows], value_range=value_range)
        row_starts = np.arange(0, band.shape[0], factor)
        row_counts = np.diff(np.append(row_starts, band.shape[0])).astype(np.float64)
        sums = np.add.reduceat(band, row_starts, axis=0, dtype=np.float64)
        sums = np.add.reduceat(sums, col_starts, axis=1)
        bands.append(sums / row_counts[:, None, None] / col_counts[None, :, None])
    return np.concatenate(bands).astype(np.float32)


def model_input(image: np.ndarray, size: int) -> np.ndarray:
    """Any 2D image (HxW or HxWxC, any real dtype) -> float32 ``size x size x 3`` in [0, 1]:
    ``resize_image(to_rgb01(image), size)``, except that a plane of more than
    :data:`LARGE_PLANE_PIXELS` is first box-averaged to about twice the model size."""
    image = np.asarray(image)
    height, width = image.shape[:2]
    factor = min(height, width) // (2 * size)
    if height * width > LARGE_PLANE_PIXELS and factor >= 2:
        return resize_image(_box_reduce(image, factor), size)
    return resize_image(to_rgb01(image), size)


def _interpolation(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of 1D linear interpolation with pixel centres aligned and
    edge values repeated (skimage's ``resize(order=1, mode="edge")`` when enlarging)."""
    pos = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (pos - lo).astype(np.float32)
    return lo, hi, frac


def _enlarge_into(small: np.ndarray, out: np.ndarray) -> None:
    """Bilinearly enlarge a 2D soft mask into ``out`` (float32, every side at least as large),
    row band by row band, so that no float64 or full-size temporary is made."""
    rows_lo, rows_hi, rows_frac = _interpolation(out.shape[0], small.shape[0])
    cols_lo, cols_hi, cols_frac = _interpolation(out.shape[1], small.shape[1])
    small = small.astype(np.float32, copy=False)
    wide = small[:, cols_lo] * (1 - cols_frac) + small[:, cols_hi] * cols_frac  # (S, W)
    step = max(1, BAND_VALUES // (4 * out.shape[1]))
    for top in range(0, out.shape[0], step):
        rows = slice(top, top + step)
        f = rows_frac[rows, None]
        np.multiply(wide[rows_lo[rows]], 1 - f, out=out[rows])
        out[rows] += wide[rows_hi[rows]] * f
    np.clip(out, 0.0, 1.0, out=out)


def soft_to_shape(
    small: np.ndarray, shape: tuple[int, int], out: np.ndarray | None = None
) -> np.ndarray:
    """A model-size soft mask resized to ``shape`` (float32 in [0, 1]), written to ``out`` if
    given. Large outputs that only enlarge take the memory-lean path (same interpolation)."""
    height, width = int(shape[0]), int(shape[1])
    enlarging = height >= small.shape[0] and width >= small.shape[1]
    if out is None:
        out = np.empty((height, width), np.float32)
    if enlarging and height * width > LARGE_PLANE_PIXELS:
        _enlarge_into(np.asarray(small), out)
    else:
        out[...] = resize_soft(small, (height, width))
    return out


def resize_soft(soft: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinearly resize a 2-D soft mask to ``shape``; float32 in [0, 1]."""
    from skimage.transform import resize

    soft = np.asarray(soft, dtype=np.float32)
    if soft.ndim != 2:
        raise InputError(f"soft mask must be 2-D, got shape {soft.shape}")
    shape = (int(shape[0]), int(shape[1]))
    if soft.shape == shape:
        return soft.copy()
    # Smoothing only helps when shrinking; when enlarging it would just blur the boundary.
    downsampling = any(o < i for o, i in zip(shape, soft.shape, strict=True))
    out = resize(
        soft,
        shape,
        order=1,
        mode="edge",
        anti_aliasing=downsampling,
        preserve_range=True,
    )
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def mask_to_model_size(mask: np.ndarray, size: int) -> np.ndarray:
    """Ground truth at model size: nearest neighbour, then >= 0.5 (as ``scoring.scores``)."""
    from skimage.transform import resize

    out = resize(
        mask.astype(np.float32),
        (size, size),
        order=0,
        mode="edge",
        anti_aliasing=False,
        preserve_range=True,
    )
    return out >= 0.5


def split_planes(image: np.ndarray, rgb: bool | None = None) -> tuple[np.ndarray, tuple, bool]:
    """View any array as a list of 2D planes: (planes (N, H, W[, C]), leading shape, rgb).

    ``rgb=None`` guesses: a last axis of 1 to 4 on a 3D+ array holds channels (napari's RGB(A)
    rule, plus grey+alpha and single-channel images as image files give them).
    """
    image = as_image_array(image)
    if image.ndim < 2 or image.size == 0:
        raise InputError(f"expected a 2D image or a stack of them, got shape {image.shape}")
    if rgb is None:
        rgb = image.ndim >= 3 and image.shape[-1] <= 4
    spatial = 3 if rgb else 2
    if image.ndim < spatial:
        raise InputError(f"an RGB image needs 3 dimensions, got shape {image.shape}")
    lead = image.shape[: image.ndim - spatial]
    return image.reshape((-1, *image.shape[image.ndim - spatial :])), lead, rgb


def _available_memory() -> int | None:
    """Bytes of memory free for new allocations, or None where that cannot be told."""
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def check_mask_memory(n_planes: int, height: int, width: int) -> None:
    """Refuse, before allocating, masks that would take more than :data:`MEMORY_SHARE` of
    the free memory: running out of memory kills the process (and napari with it)."""
    needed = n_planes * height * width * MASK_BYTES_PER_PIXEL
    available = _available_memory()
    if available is None or needed <= MEMORY_SHARE * available:
        return
    gb = 1 << 30
    raise InputError(
        f"the masks of {n_planes} plane(s) of {height}x{width} pixels would need "
        f"{needed / gb:.1f} GB of memory and only {available / gb:.1f} GB is free; crop or "
        "downscale the image, or segment fewer planes at a time"
    )
