"""Image intensities to float32 [0, 1] RGB as the model reads them: the channels that carry
the picture, and a stretch by the image's own finite range (or a given one, so that parts of
an image are normalised exactly as the whole)."""

from __future__ import annotations

import math

import numpy as np

from wavegms.core.errors import InputError


def as_image_array(image: object, what: str = "image") -> np.ndarray:
    """``image`` as a NumPy array, or :class:`InputError` for what makes no array: nested
    lists of uneven lengths (``[[1, 2, 3], [4, 5]]``), objects NumPy cannot take."""
    try:
        return np.asarray(image)
    except (ValueError, TypeError) as err:
        raise InputError(
            f"{what} is no array of pixels ({type(image).__name__}: {err}); give a 2D "
            "image or a stack as a NumPy array with rows of equal length"
        ) from None


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
    array = as_image_array(array)
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


#: the share of pixels that may differ from the rest in an image that still has no signal:
#: one stray pixel in a blank image is no picture, a lesion of 50 pixels in 224x224 is
NO_SIGNAL_SHARE = 0.001


def _typical_pixel(pixels: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """Per channel, the value most pixels share when nearly all share one: the mode of 8- and
    16-bit data (a count, no sort), else the median of the finite values."""
    if pixels.dtype == bool or (pixels.dtype.kind in "iu" and pixels.dtype.itemsize <= 2):
        return np.array([_mode(pixels[:, c]) for c in range(pixels.shape[1])])
    return np.median(pixels[finite], axis=0)


def _mode(values: np.ndarray, chunk: int = 1 << 20) -> int:
    """The most common of 8- or 16-bit values, counted a chunk at a time (bincount's int64
    copy of an 8000x8000 image would take 512 MB)."""
    low = int(values.min())
    counts = np.zeros(int(values.max()) - low + 1, np.int64)
    for start in range(0, len(values), chunk):
        part = values[start : start + chunk].astype(np.int64) - low
        counts += np.bincount(part, minlength=len(counts))
    return int(counts.argmax()) + low


def no_signal(array: np.ndarray) -> str | None:
    """Why an image (as read: HxW or HxWxC) holds no picture to segment, or None when it does.

    No picture: no finite pixel (an all-NaN slice), every pixel alike (a constant image, a
    DICOM blank after its window), or all alike but :data:`NO_SIGNAL_SHARE` of them. Such an
    image is stretched to black (or a single dot) before the model sees it, and any mask the
    model draws on it is an answer to nothing."""
    values = _intensities(array)
    pixels = values.reshape(values.shape[0] * values.shape[1], -1)
    finite = np.isfinite(pixels).all(axis=1) if pixels.dtype.kind == "f" else None
    if finite is not None and not finite.any():
        return "no signal: no pixel has a finite value"
    typical = _typical_pixel(pixels, finite if finite is not None else slice(None))
    differ = (pixels != typical).any(axis=1)
    if finite is not None:
        differ &= finite  # NaN and infinite pixels are no signal either
    count = int(np.count_nonzero(differ))
    if count > NO_SIGNAL_SHARE * len(pixels):
        return None
    shown = ", ".join(f"{float(v):g}" for v in typical)
    alike = "are" if finite is None or finite.all() else "are not finite or"
    if count == 0:
        return f"no signal: every pixel {'is' if alike == 'are' else alike} {shown}"
    return f"no signal: all but {count} of {len(pixels)} pixels {alike} {shown}"
