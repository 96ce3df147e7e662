"""Reading images and masks, normalising them to [0,1] RGB, and atomic PNG/JSON writes.

Every failure a user can cause (a missing file, a file that is not an image, an array of the
wrong shape) raises a :mod:`wavegms.errors` exception whose message names the file or the
problem, never a bare ``OSError`` from Pillow or imageio.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ImageReadError, InputError, MaskWarning, OutputExistsError, OutputWriteError

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
    :class:`~wavegms.errors.MaskWarning` naming ``what``.
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


# --------------------------------------------------------------------------------------- writing


#: the names :func:`atomic_write` gives its temporary files: ``.<name>.<12 hex>.tmp[suffix]``
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp(\.[A-Za-z0-9]+)?$")


def ensure_folder(folder: PathLike, what: str = "output folder") -> Path:
    """Create ``folder`` (and its parents) if needed and check that files can be made in it.

    Raises :class:`OutputWriteError` naming the folder, e.g. when a file stands where a folder
    should be or the place is read-only, before any long work starts.
    """
    d = Path(folder)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"cannot create the {what} {d}: {_reason(exc)}") from exc
    if not os.access(d, os.W_OK | os.X_OK):
        raise OutputWriteError(f"cannot write into the {what} {d}: permission denied")
    return d


def atomic_write(path: Path, write: Callable[[Path], None], suffix: str = "") -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it into place.

    The rename is atomic on one filesystem, so readers see the old file or the new one, never
    a half-written one; the temporary file is removed if anything fails. An ``OSError`` (a
    read-only folder, a full disk) becomes an :class:`OutputWriteError` naming ``path``.
    A process killed inside ``write`` leaves its temporary file behind (nothing can remove
    it then): :func:`remove_stale_temporaries` clears such leftovers.
    """
    ensure_folder(path.parent, "folder")
    # Not tempfile.mkstemp: it creates mode 0600 files, and the rename would keep that mode.
    # os.open with 0o666 lets the umask decide, as for any normally created file.
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp{suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputWriteError(f"cannot write {path}: {_reason(exc)}") from exc
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, OutputWriteError):
            raise OutputWriteError(f"cannot write {path}: {_reason(exc)}") from exc
        raise
    return path


def remove_stale_temporaries(folder: PathLike) -> list[Path]:
    """Delete the temporary files that :func:`atomic_write` calls in ``folder`` left behind
    when their process was killed; returns what was removed.

    Only for folders one process writes at a time (a training run's folder): a temporary file
    of a write still in progress elsewhere would be removed too.
    """
    d = Path(folder)
    if not d.is_dir():
        return []
    removed = []
    for p in d.iterdir():
        if _TEMPORARY.match(p.name) and p.is_file():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


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
