"""Reading images and masks as viewers show them, and normalising them to [0,1] RGB.

Every failure a user can cause (a missing file, a file that is not an image, an array of the
wrong shape) raises a :mod:`wavegms.core.errors` exception whose message names the file or the
problem, never a bare ``OSError`` from Pillow or imageio.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from wavegms.core.errors import ImageReadError, InputError, MaskWarning
from wavegms.core.files import PathLike, os_error_reason

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file with scikit-image and return the raw array (no normalisation).

    Raises :class:`ImageReadError` naming the file and the reason on any failure.
    """
    p = Path(path)
    # Check the common cases first so the message is plain, not a library's internal text.
    try:
        p.stat()
    except FileNotFoundError as exc:
        what = "a broken symbolic link" if p.is_symlink() else "the file does not exist"
        raise ImageReadError(f"cannot read image {p}: {what}") from exc
    except OSError as exc:  # e.g. a symlink loop or a name that is too long
        raise ImageReadError(f"cannot read image {p}: {os_error_reason(exc)}") from exc
    if p.is_dir():
        raise ImageReadError(f"cannot read image {p}: it is a folder, not a file")

    from skimage import io as skio  # imported lazily: skimage.io pulls in imageio plugins

    try:
        array = skio.imread(str(p))
    except MemoryError:
        raise
    except Exception as exc:  # Pillow, imageio and tifffile raise many unrelated types
        raise ImageReadError(f"cannot read image {p}: {os_error_reason(exc)}") from exc
    array = np.asarray(array)
    if array.size == 0:
        raise ImageReadError(f"cannot read image {p}: it holds no pixels")
    return array


def check_numeric(array: np.ndarray, what: str) -> None:
    """Raise :class:`InputError` unless ``array`` is a non-empty real-valued (or bool) array."""
    if array.size == 0:
        raise InputError(f"{what} is empty (shape {array.shape})")
    if np.iscomplexobj(array):
        raise InputError(f"{what} has complex values ({array.dtype}); give a real-valued image")
    if not (array.dtype == bool or np.issubdtype(array.dtype, np.number)):
        raise InputError(f"{what} has unsupported data type {array.dtype}")


def _first_plane(array: np.ndarray, what: str) -> np.ndarray:
    """The HxW channel-0 plane of a 2D image (HxW or HxWxC with C in 1..4)."""
    if array.ndim == 2:
        return array
    if array.ndim == 3 and 1 <= array.shape[-1] <= 4:
        return array[..., 0]
    raise InputError(
        f"{what} has shape {array.shape}; expected a 2D image HxW or HxWxC with 1 to 4 channels"
    )


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


def merged_labels_message(labels: np.ndarray, what: str) -> str:
    """What to tell the user when the label values ``labels`` became one foreground."""
    shown = ", ".join(str(v) for v in labels[:8]) + (", ..." if len(labels) > 8 else "")
    return (
        f"{what} holds {len(labels)} different label values ({shown}); all of them were "
        "merged into one foreground (Wave-GMS segments one structure)"
    )


def binarise_mask(array: np.ndarray, what: str = "mask") -> np.ndarray:
    """Binarise a mask array to bool HxW (colour masks: first channel).

    Rule: ``bool`` as is; floats ``>= 0.5`` (NaN is background); integers holding only 0 and
    1 (label-style masks, as numpy code and napari Labels produce) ``> 0``; other 8- and
    16-bit integers ``> dtype max // 2`` (``uint8``: ``> 127``, which also removes JPEG
    artefacts) unless no value reaches that far: then they are label images (values such as
    1, 2, 3) and any label is foreground; other integers wider than 16 bits ``> 0``, because
    such arrays come from label images, never from mask files where half the dtype range would
    mean anything. Several different labels merged into one foreground give a
    :class:`~wavegms.core.errors.MaskWarning` naming ``what``.
    """
    array = np.asarray(array)
    check_numeric(array, what)
    plane = _first_plane(array, what)
    if plane.dtype == bool:
        return plane.copy()
    if np.issubdtype(plane.dtype, np.floating):
        with np.errstate(invalid="ignore"):
            return np.nan_to_num(plane, nan=0.0) >= 0.5
    # integers
    lo, hi = plane.min(), plane.max()
    if lo >= 0 and hi <= 1:
        return plane > 0
    info = np.iinfo(plane.dtype)
    if info.bits <= 16 and hi > info.max // 2:
        return plane > info.max // 2
    # A label image: thresholding at half the range would silently drop every label.
    mask = plane > 0
    labels = np.unique(plane[mask])
    if len(labels) > 1:
        warnings.warn(merged_labels_message(labels, what), MaskWarning, stacklevel=2)
    return mask


def read_mask(path: PathLike) -> np.ndarray:
    """Read a mask file and binarise it (see :func:`binarise_mask`) to bool HxW."""
    array = read_image(path)
    try:
        return binarise_mask(array, what=f"mask {Path(path)}")
    except InputError as exc:
        raise InputError(f"mask {Path(path)}: {exc}") from exc


def list_images(folder: PathLike) -> list[Path]:
    """Sorted image files of ``folder`` (suffix in :data:`IMAGE_SUFFIXES`, any case).

    Hidden files (names starting with ``.``, e.g. macOS ``._x.png`` resource forks) are
    skipped: they share the suffix but are not images. Folders are skipped; broken symbolic
    links and link loops are listed, so that reading them reports them instead of their
    silently going missing.
    """
    d = Path(folder)
    if not d.is_dir():
        raise InputError(f"{d} is not a folder")
    return sorted(
        p
        for p in d.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and not p.is_dir()
    )
