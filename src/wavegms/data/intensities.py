"""Image intensities to float32 [0, 1] RGB as the model reads them: the channels that carry
the picture, and a stretch by the image's own finite range (or a given one, so that parts of
an image are normalised exactly as the whole)."""

from __future__ import annotations

import math

import numpy as np

from wavegms.core.errors import InputError


def check_numeric(array: np.ndarray, what: str) -> None:
    """Raise :class:`InputError` unless ``array`` is a non-empty real-valued (or bool) array."""
    if array.size == 0:
        raise InputError(f"{what} is empty (shape {array.shape})")
    if np.iscomplexobj(array):
        raise InputError(f"{what} has complex values ({array.dtype}); give a real-valued image")
    if not (array.dtype == bool or np.issubdtype(array.dtype, np.number)):
        raise InputError(f"{what} has unsupported data type {array.dtype}")


def _intensities(array: np.ndarray) -> np.ndarray:
    """The values :func:`to_rgb01` uses, as a view: HxW grey or HxWx3 colour.

    HxW is kept, HxWx1 and HxWx2 (grey + alpha) give their first channel, HxWx3 is kept and
    HxWx4 drops alpha. Anything else raises :class:`InputError`.
    """
    array = np.asarray(array)
    check_numeric(array, "image")
    if array.ndim == 2:
        return array
    if array.ndim == 3 and array.shape[-1] in (1, 2):
        return array[..., 0]
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        return array[..., :3]
    if array.ndim == 3:
        raise InputError(
            f"image has shape {array.shape}: {array.shape[-1]} channels in the last axis; "
            "expected HxW or HxWxC with C in 1..4 (a 3D stack or a channel-first array must be "
            "split into 2D images first)"
        )
    raise InputError(
        f"image has {array.ndim} dimensions (shape {array.shape}); expected a 2D image, "
        "HxW or HxWxC with C in 1..4"
    )


def _finite_min_max(values: np.ndarray) -> tuple[float, float] | None:
    """Min and max over the finite values (None if there are none), without copying them."""
    if not np.issubdtype(values.dtype, np.floating):
        return float(values.min()), float(values.max())
    finite = np.isfinite(values)
    if not finite.any():
        return None
    lo = np.min(values, where=finite, initial=np.inf)
    hi = np.max(values, where=finite, initial=-np.inf)
    return float(lo), float(hi)


def intensity_range(array: np.ndarray) -> tuple[float, float]:
    """``(offset, span)`` with which :func:`to_rgb01` maps a value ``v`` to
    ``clip((v - offset) / span, 0, 1)``; ``span`` is infinite where the result is all zeros.

    Computed once for a whole image, it lets parts of the image be normalised separately
    (``to_rgb01(part, value_range=...)``) exactly as the whole would be.
    """
    values = _intensities(array)
    if values.dtype == bool:
        return 0.0, 1.0
    if values.dtype == np.uint8:
        return 0.0, 255.0
    bounds = _finite_min_max(values)
    if bounds is None:
        return 0.0, math.inf  # no finite value at all: black
    lo, hi = bounds
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    if hi > lo:
        return lo, hi - lo
    return lo, math.inf  # a constant image that needs stretching: black


def _normalise(values: np.ndarray, offset: float, span: float) -> np.ndarray:
    """Map intensities to float32 [0, 1] as :func:`intensity_range` describes; NaN/Inf -> 0."""
    if values.dtype == bool:
        return values.astype(np.float32)
    if values.dtype == np.uint8:
        return values.astype(np.float32) / np.float32(255.0)
    # float64 for the arithmetic: int64/uint64 ranges and float16 would lose precision.
    out = values.astype(np.float64)
    finite = np.isfinite(out)
    out -= offset
    out /= span
    out[~finite] = 0.0  # non-finite pixels are black whatever the stretch did
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def to_rgb01(array: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Normalise one 2D image to float32 HxWx3 in [0, 1].

    Channels: HxW and HxWx1 are replicated, HxWx2 (gray + alpha) uses its first channel,
    HxWx3 is kept, HxWx4 drops alpha. Anything else (3D stacks, channel-first arrays) raises
    :class:`InputError`; stacks are split by the caller.

    Values: ``bool`` -> 0/1; ``uint8`` -> /255; other integers and floats are kept as they are
    when they already lie in [0, 1], else stretched by the image's own min/max (over all
    channels, so colour balance is kept). A constant image that needs stretching becomes zeros.
    NaN/Inf are ignored for min/max and become 0. ``value_range`` (see
    :func:`intensity_range`) replaces the image's own min/max, e.g. for a band of a larger image.
    """
    values = _intensities(array)
    offset, span = value_range if value_range is not None else intensity_range(values)
    out = _normalise(values, offset, span)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=-1)
    return out
