"""Reading images and masks, normalising them to [0,1] RGB, and atomic PNG/JSON writes.

Every failure a user can cause (a missing file, a file that is not an image, an array of the
wrong shape) raises a :mod:`wavegms.errors` exception whose message names the file or the
problem, never a bare ``OSError`` from Pillow or imageio.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ImageReadError, InputError, OutputExistsError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

PathLike = str | os.PathLike


# --------------------------------------------------------------------------------------- reading


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
        raise ImageReadError(f"cannot read image {p}: {_reason(exc)}") from exc
    if p.is_dir():
        raise ImageReadError(f"cannot read image {p}: it is a folder, not a file")

    from skimage import io as skio  # imported lazily: skimage.io pulls in imageio plugins

    try:
        array = skio.imread(str(p))
    except MemoryError:
        raise
    except Exception as exc:  # Pillow, imageio and tifffile raise many unrelated types
        raise ImageReadError(f"cannot read image {p}: {_reason(exc)}") from exc
    array = np.asarray(array)
    if array.size == 0:
        raise ImageReadError(f"cannot read image {p}: it holds no pixels")
    return array


def _reason(exc: BaseException) -> str:
    """A short human reason for a failed read."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = str(exc).strip() or type(exc).__name__
    if "could not find a backend" in text.lower():  # imageio's words for "unknown format"
        return "not an image in a format that can be read"
    return text.splitlines()[0][:300]


def _check_numeric(array: np.ndarray, what: str) -> None:
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


def to_rgb01(array: np.ndarray) -> np.ndarray:
    """Normalise one 2D image to float32 HxWx3 in [0, 1].

    Channels: HxW and HxWx1 are replicated, HxWx2 (gray + alpha) uses its first channel,
    HxWx3 is kept, HxWx4 drops alpha. Anything else (3D stacks, channel-first arrays) raises
    :class:`InputError`; stacks are split by the caller.

    Values: ``bool`` -> 0/1; ``uint8`` -> /255; other integers and floats are kept as they are
    when they already lie in [0, 1], else stretched by the image's own min/max (over all
    channels, so colour balance is kept). A constant image that needs stretching becomes zeros.
    NaN/Inf are ignored for min/max and become 0.
    """
    array = np.asarray(array)
    _check_numeric(array, "image")
    if array.ndim == 2:
        rgb = np.repeat(array[..., None], 3, axis=-1)
    elif array.ndim == 3 and array.shape[-1] in (1, 2):
        rgb = np.repeat(array[..., :1], 3, axis=-1)
    elif array.ndim == 3 and array.shape[-1] in (3, 4):
        rgb = array[..., :3]
    elif array.ndim == 3:
        raise InputError(
            f"image has shape {array.shape}: {array.shape[-1]} channels in the last axis; "
            "expected HxW or HxWxC with C in 1..4 (a 3D stack or a channel-first array must be "
            "split into 2D images first)"
        )
    else:
        raise InputError(
            f"image has {array.ndim} dimensions (shape {array.shape}); expected a 2D image, "
            "HxW or HxWxC with C in 1..4"
        )

    if rgb.dtype == bool:
        return rgb.astype(np.float32)
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float32) / np.float32(255.0)

    # float64 for the arithmetic: int64/uint64 ranges and float16 would lose precision.
    values = rgb.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        values = np.where(finite, values, 0.0)
    if not finite.any():
        return np.zeros(rgb.shape, np.float32)
    lo = float(values[finite].min())
    hi = float(values[finite].max())
    if lo >= 0.0 and hi <= 1.0:
        out = values
    elif hi > lo:
        out = (values - lo) / (hi - lo)
    else:
        out = np.zeros_like(values)
    out[~finite] = 0.0  # non-finite pixels are black whatever the stretch did to the 0 fill
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def binarise_mask(array: np.ndarray) -> np.ndarray:
    """Binarise a mask array to bool HxW (colour masks: first channel).

    Rule: ``bool`` as is; floats ``>= 0.5`` (NaN is background); integers holding only 0 and
    1 (label-style masks, as numpy code and napari Labels produce) ``> 0``; other 8- and
    16-bit integers ``> dtype max // 2`` (``uint8``: ``> 127``, which also removes JPEG
    artefacts); other integers wider than 16 bits ``> 0``, because such arrays come from
    label images, never from mask files where half the dtype range would mean anything.
    """
    array = np.asarray(array)
    _check_numeric(array, "mask")
    plane = _first_plane(array, "mask")
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
    if info.bits <= 16:
        return plane > info.max // 2
    return plane > 0


def read_mask(path: PathLike) -> np.ndarray:
    """Read a mask file and binarise it (see :func:`binarise_mask`) to bool HxW."""
    array = read_image(path)
    try:
        return binarise_mask(array)
    except InputError as exc:
        raise InputError(f"mask {Path(path)}: {exc}") from exc


def read_json(path: PathLike) -> Any:
    """Read a UTF-8 JSON file; :class:`InputError` naming the file if it is missing or bad."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError(f"cannot read JSON file {p}: the file does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read JSON file {p}: {_reason(exc)}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{p} is not valid JSON: {exc}") from exc


def list_images(folder: PathLike) -> list[Path]:
    """Sorted image files of ``folder`` (suffix in :data:`IMAGE_SUFFIXES`, any case).

    Hidden files (names starting with ``.``, e.g. macOS ``._x.png`` resource forks) are
    skipped: they share the suffix but are not images.
    """
    d = Path(folder)
    if not d.is_dir():
        raise InputError(f"{d} is not a folder")
    return sorted(
        p
        for p in d.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


# --------------------------------------------------------------------------------------- writing


def atomic_write(path: Path, write: Callable[[Path], None], suffix: str = "") -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it into place.

    The rename is atomic on one filesystem, so readers see the old file or the new one, never
    a half-written one; the temporary file is removed if anything fails.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: it creates mode 0600 files, and the rename would keep that mode.
    # os.open with 0o666 lets the umask decide, as for any normally created file.
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp{suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def _png_array(array: np.ndarray) -> np.ndarray:
    """Convert an array to something PNG stores losslessly (uint8 or uint16, 1/3/4 channels)."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.size == 0 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (2, 3, 4))):
        raise InputError(f"cannot write an array of shape {a.shape} as PNG; expected HxW[xC]")
    if a.dtype == bool:
        return a.astype(np.uint8) * np.uint8(255)
    if a.dtype in (np.uint8, np.uint16):
        return a
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise InputError("cannot write an image with NaN or Inf values as PNG")
        # A little slack for rounding in arithmetic that should have stayed in [0, 1].
        if a.min() < -1e-3 or a.max() > 1 + 1e-3:
            raise InputError(
                f"float image values must lie in [0, 1] to be written as PNG "
                f"(found {a.min():.4g} .. {a.max():.4g})"
            )
        return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        lo, hi = int(a.min()), int(a.max())
        if lo >= 0 and hi <= 255:
            return a.astype(np.uint8)
        if lo >= 0 and hi <= 65535:
            return a.astype(np.uint16)
        raise InputError(f"integer values {lo} .. {hi} do not fit into a 16-bit PNG")
    raise InputError(f"cannot write an array of data type {a.dtype} as PNG")


def write_png(path: PathLike, array: np.ndarray, overwrite: bool = False) -> Path:
    """Write ``array`` atomically as a PNG file and return its path.

    ``bool`` -> 0/255, floats in [0, 1] -> ``round(x * 255)`` uint8, uint8/uint16 as they are.
    Raises :class:`OutputExistsError` if the file exists and ``overwrite`` is false, and
    :class:`InputError` for a path not ending in ``.png`` or an array PNG cannot hold.
    """
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise InputError(f"{p}: a PNG file name must end in .png")
    data = _png_array(array)  # validate before touching the disk
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{p} already exists (pass overwrite=True to replace it)")

    from skimage import io as skio

    def write(tmp: Path) -> None:
        # check_contrast=False: masks and dark images are legitimate; no warning spam.
        skio.imsave(str(tmp), data, check_contrast=False)

    return atomic_write(p, write, ".png")


def _json_default(obj: Any) -> Any:
    """Serialise the numpy scalars/arrays and paths that metrics and configs tend to hold."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` atomically as UTF-8 (newlines as given) and return the path."""

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8", newline="")

    return atomic_write(Path(path), write)


def write_json(path: PathLike, obj: Any) -> Path:
    """Write ``obj`` atomically as UTF-8 JSON (indent 2) and return the path.

    numpy scalars/arrays and paths are converted; NaN is written as ``NaN`` (Python's json
    reads it back), since metrics such as HD95 can be undefined.
    """
    p = Path(path)
    try:
        text = json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n"
    except (TypeError, ValueError) as exc:
        raise InputError(f"cannot write {p} as JSON: {exc}") from exc

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    return atomic_write(p, write, ".json")
