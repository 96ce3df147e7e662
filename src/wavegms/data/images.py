"""Reading images and masks as viewers show them, and normalising them to [0,1] RGB.

Every failure a user can cause (a missing file, a file that is not an image, an array of the
wrong shape) raises a :mod:`wavegms.core.errors` exception whose message names the file or the
problem, never a bare ``OSError`` from Pillow or imageio.
"""

from __future__ import annotations

import math
import os
import stat
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from wavegms.core.errors import ImageReadError, InputError, MaskWarning
from wavegms.core.files import PathLike, os_error_reason
from wavegms.data.clinical import clinical_kind, format_suffix, read_header, read_planes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

#: image formats found in medical folders that are not read: listed as skipped, with why
UNREAD_FORMATS = {
    ".nrrd": "NRRD is not read yet; export the slices as PNG or TIFF",
    ".mha": "MetaImage is not read yet; export the slices as PNG or TIFF",
    ".mhd": "MetaImage is not read yet; export the slices as PNG or TIFF",
    ".gif": "GIF is not read (often an animation); save the frame as PNG",
    ".webp": "WebP is not read; save it as PNG",
    ".jp2": "JPEG 2000 is not read; save it as PNG or TIFF",
    ".heic": "HEIC is not read; save it as PNG or JPEG",
    ".svg": "SVG is a drawing, not a pixel image; save it as PNG",
}

#: the most pixels one file may declare (all its planes together): 2^28, e.g. 16384 x 16384;
#: checked on the header, before any pixel is decoded
MAX_PIXELS = 1 << 28

#: the EXIF tag that says how a viewer must turn the stored pixels
ORIENTATION_TAG = 0x0112

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _special_kind(mode: int) -> str | None:
    """What a file that is no regular file and no folder is, or None for a regular file."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _check_file(p: Path) -> None:
    """Raise :class:`ImageReadError` unless ``p`` is a regular file that exists; never opens
    it (opening a FIFO would block forever)."""
    try:
        mode = p.stat().st_mode
    except FileNotFoundError as exc:
        what = "a broken symbolic link" if p.is_symlink() else "the file does not exist"
        raise ImageReadError(f"cannot read image {p}: {what}") from exc
    except OSError as exc:  # e.g. a symlink loop or a name that is too long
        raise ImageReadError(f"cannot read image {p}: {os_error_reason(exc)}") from exc
    if stat.S_ISDIR(mode):
        raise ImageReadError(f"cannot read image {p}: it is a folder, not a file")
    kind = _special_kind(mode)
    if kind:
        raise ImageReadError(f"cannot read image {p}: it is {kind}, not a regular file")
    why = UNREAD_FORMATS.get(format_suffix(p))
    if why:
        raise ImageReadError(f"cannot read image {p}: {why}")


def _check_pixels(p: Path, pixels: int, shape: tuple[int, ...]) -> None:
    if pixels > MAX_PIXELS:
        size = " x ".join(str(n) for n in shape)
        raise ImageReadError(
            f"cannot read image {p}: it declares {size} = {pixels} pixels, more than the limit "
            f"of {MAX_PIXELS} (2^28); crop or downscale it first"
        )


def _is_tiff(p: Path) -> bool:
    with open(p, "rb") as f:
        return f.read(4) in _TIFF_MAGIC


def _tiff_planes(series: Any) -> int:
    """How many 2D planes a tifffile series holds (colour samples are no planes)."""
    plane = series.shape[series.axes.index("Y")] * series.shape[series.axes.index("X")]
    if "S" in series.axes:
        plane *= series.shape[series.axes.index("S")]
    return int(np.prod(series.shape, dtype=np.int64)) // max(plane, 1)


def _read_tiff(p: Path, page: int | None) -> np.ndarray:
    """A TIFF as tifffile reads its first series, colour samples last as viewers show them:
    HxW[xC], or a stack (N, H, W[, C]) of its pages; ``page`` picks one plane of a stack."""
    import tifffile

    with tifffile.TiffFile(p) as tif:
        series = tif.series[0]
        shape = tuple(int(n) for n in series.shape)
        samples = shape[series.axes.index("S")] if "S" in series.axes else 1
        _check_pixels(p, int(np.prod(shape, dtype=np.int64)) // samples, shape)
        n = _tiff_planes(series)
        if page is not None and not 0 <= page < n:
            raise ImageReadError(f"cannot read image {p}: it has no page {page} ({n} pages)")
        samples_last = samples == 1 or series.axes.endswith("S")
        if page is not None and samples_last and len(series.pages) == n:
            return tif.asarray(key=page, series=0)  # that page only, not the whole stack
        array = series.asarray()
        if not samples_last:  # planar RGB (S, Y, X): the colours go last
            array = np.moveaxis(array, series.axes.index("S"), -1)
        if page is None:
            return array
        return array.reshape(n, *array.shape[-3 if samples > 1 else -2 :])[page]


def _read_pillow(p: Path) -> np.ndarray:
    """PNG, JPEG, BMP as a viewer shows them: EXIF orientation applied, CMYK and palettes
    converted to RGB(A), 16-bit grey kept."""
    from PIL import Image, ImageOps

    try:
        im = Image.open(p)  # reads the header only
    except Image.DecompressionBombError as exc:  # Pillow's own, lower limit
        raise ImageReadError(
            f"cannot read image {p}: it declares more than {2 * Image.MAX_IMAGE_PIXELS} "
            "pixels, Pillow's limit against decompression bombs; crop or downscale it first"
        ) from exc
    with im:
        _check_pixels(p, im.width * im.height, (im.height, im.width))
        shown = im
        if im.getexif().get(ORIENTATION_TAG, 1) != 1:  # transposing copies: only when needed
            shown = ImageOps.exif_transpose(im)
        if shown.mode == "P":
            shown = shown.convert("RGBA" if "transparency" in shown.info else "RGB")
        elif shown.mode == "PA":
            shown = shown.convert("RGBA")
        elif shown.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
            shown = shown.convert("RGB")  # as viewers show it (a CMYK array is a colour negative)
        return np.asarray(shown)  # decodes, inside ``with``: a closed image has no pixels


def _read_clinical(p: Path, page: int | None) -> np.ndarray:
    """DICOM and NIfTI (see :mod:`wavegms.data.clinical`), after a look at their header: the
    pixel limit holds for what is decoded, one frame of a long cine loop or the whole stack."""
    header = read_header(p)
    planes = header.planes if page is None else 1
    _check_pixels(p, planes * header.height * header.width,
                  (planes, header.height, header.width))  # fmt: skip
    return read_planes(p, page, header=header)


def read_image(path: PathLike, page: int | None = None) -> np.ndarray:
    """Read an image file as viewers show it and return the raw array (no normalisation).

    PNG, JPEG and BMP go through Pillow: the EXIF orientation is applied, CMYK, YCbCr and
    palette images become RGB (RGBA if the palette has transparency), 16-bit grey stays uint16.
    TIFFs go through tifffile with their own data type; a multi-page TIFF is a stack
    ``(N, H, W[, C])`` (``page`` picks plane ``page`` of it instead). DICOM and NIfTI
    files (by suffix, or the DICM marker of a file with no suffix) are read as viewers show
    them, float32 in [0, 1] (see :mod:`wavegms.data.clinical`): a multi-frame DICOM or a 3D
    NIfTI is a stack of its frames or slices.

    Refused with :class:`ImageReadError` naming the file and the reason, before any pixel is
    decoded: anything but a regular file (a FIFO would block the read forever), formats in
    :data:`UNREAD_FORMATS`, headers declaring more than :data:`MAX_PIXELS` pixels; and any
    decoding failure.
    """
    p = Path(path)
    _check_file(p)
    if clinical_kind(p, sniff=True):
        array = _read_clinical(p, page)
        if array.size == 0:
            raise ImageReadError(f"cannot read image {p}: it holds no pixels")
        return array
    try:
        if _is_tiff(p):
            array = _read_tiff(p, page)
        else:
            if page not in (None, 0):
                raise ImageReadError(f"cannot read image {p}: it has one page, not {page + 1}")
            array = _read_pillow(p)
    except ImageReadError:
        raise
    except MemoryError as exc:
        raise ImageReadError(f"cannot read image {p}: it does not fit into memory") from exc
    except Exception as exc:  # Pillow and tifffile raise many unrelated types
        raise ImageReadError(f"cannot read image {p}: {os_error_reason(exc)}") from exc
    array = np.asarray(array)
    if array.size == 0:
        raise ImageReadError(f"cannot read image {p}: it holds no pixels")
    return array


def page_count(path: PathLike) -> int:
    """How many 2D planes :func:`read_image` returns for ``path`` (1 unless a multi-page
    TIFF, a multi-frame DICOM or a NIfTI volume); raises :class:`ImageReadError` like
    :func:`read_image`."""
    p = Path(path)
    _check_file(p)
    if clinical_kind(p, sniff=True):
        return read_header(p).planes
    try:
        if not _is_tiff(p):
            return 1
        import tifffile

        with tifffile.TiffFile(p) as tif:
            return _tiff_planes(tif.series[0])
    except Exception as exc:
        raise ImageReadError(f"cannot read image {p}: {os_error_reason(exc)}") from exc


def check_numeric(array: np.ndarray, what: str) -> None:
    """Raise :class:`InputError` unless ``array`` is a non-empty real-valued (or bool) array."""
    if array.size == 0:
        raise InputError(f"{what} is empty (shape {array.shape})")
    if np.iscomplexobj(array):
        raise InputError(f"{what} has complex values ({array.dtype}); give a real-valued image")
    if not (array.dtype == bool or np.issubdtype(array.dtype, np.number)):
        raise InputError(f"{what} has unsupported data type {array.dtype}")


#: a colour mask with 2 up to this many different colours in its foreground looks like labels
#: drawn in colours; more are anti-aliased or JPEG edges of one drawing
LABEL_COLOURS = 16


def _mask_plane(array: np.ndarray, what: str) -> np.ndarray:
    """The HxW plane a mask's foreground is read from: any non-zero channel counts, so a mask
    drawn in any colour is seen. Where the alpha channel holds transparency, only opaque
    pixels are drawn; if they all have one colour (or none: an alpha-only drawing), the
    opaque area itself is the mask."""
    if array.ndim == 2:
        return array
    if not (array.ndim == 3 and 1 <= array.shape[-1] <= 4):
        raise InputError(
            f"{what} has shape {array.shape}; expected a 2D image HxW or HxWxC with 1 to 4 channels"
        )
    channels = array.shape[-1]
    has_alpha = channels in (2, 4)
    colour = array[..., : channels - 1] if has_alpha else array
    plane = colour.max(axis=-1)
    if has_alpha:
        alpha = array[..., -1]
        lo, hi = alpha.min(), alpha.max()
        if lo != hi:  # transparency: what is opaque is what was drawn
            opaque = alpha > lo + (hi - lo) / 2
            drawn = plane[opaque]
            if drawn.min() == drawn.max():
                return opaque
            return np.where(opaque, plane, np.zeros((), plane.dtype))
    return plane


def _warn_colour_labels(array: np.ndarray, mask: np.ndarray, what: str) -> None:
    """A MaskWarning when a colour mask's foreground holds a few different colours."""
    if array.ndim != 3 or array.shape[-1] < 3 or not mask.any():
        return
    colour = array[..., :3][mask]
    if (colour == colour[:, :1]).all():
        return  # grey: label values were already looked at
    colours = np.unique(colour, axis=0)
    if 1 < len(colours) <= LABEL_COLOURS:
        shown = ", ".join(str(tuple(int(v) for v in c)) for c in colours[:4])
        warnings.warn(
            f"{what} holds {len(colours)} different colours ({shown}"
            f"{', ...' if len(colours) > 4 else ''}); all of them were merged into one "
            "foreground (Wave-GMS segments one structure)",
            MaskWarning,
            stacklevel=3,
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
    """Binarise a mask array to bool HxW.

    Colour masks: any channel counts (a mask drawn in green or blue is as visible as one in
    red); with transparency, only opaque pixels count, and an alpha-only drawing is its opaque
    area (see :func:`_mask_plane`). Values: ``bool`` as is; floats ``>= 0.5`` (NaN is
    background); integers holding only 0 and 1 (label-style masks, as numpy code and napari
    Labels produce) ``> 0``; other 8- and 16-bit integers ``> dtype max // 2`` (``uint8``:
    ``> 127``, which also removes JPEG artefacts) unless no value reaches that far: then they
    are label images (values such as 1, 2, 3) and any label is foreground; other integers
    wider than 16 bits ``> 0``, because such arrays come from label images, never from mask
    files where half the dtype range would mean anything. Several different labels (or a few
    different colours) merged into one foreground give a
    :class:`~wavegms.core.errors.MaskWarning` naming ``what``.
    """
    array = np.asarray(array)
    check_numeric(array, what)
    plane = _mask_plane(array, what)
    if plane.dtype == bool:
        mask = plane.copy()
    elif np.issubdtype(plane.dtype, np.floating):
        with np.errstate(invalid="ignore"):
            mask = np.nan_to_num(plane, nan=0.0) >= 0.5
    else:
        mask = _binarise_integers(plane, what)
    _warn_colour_labels(array, mask, what)
    return mask


def _binarise_integers(plane: np.ndarray, what: str) -> np.ndarray:
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
        warnings.warn(merged_labels_message(labels, what), MaskWarning, stacklevel=3)
    return mask


def read_mask(path: PathLike) -> np.ndarray:
    """Read a mask file and binarise it (see :func:`binarise_mask`) to bool HxW."""
    array = read_image(path)
    try:
        return binarise_mask(array, what=f"mask {Path(path)}")
    except InputError as exc:
        raise InputError(f"mask {Path(path)}: {exc}") from exc


class FolderScan(NamedTuple):
    """A folder's image files: those to read, and those skipped with why."""

    images: list[Path]  # sorted; reading each may still fail (a broken link, a bad file)
    skipped: list[tuple[Path, str]]  # (file, why), sorted


def scan_folder(folder: PathLike) -> FolderScan:
    """The image files of ``folder``, sorted: suffix in :data:`IMAGE_SUFFIXES` or
    :data:`~wavegms.data.clinical.CLINICAL_SUFFIXES` (any case; DICOM and NIfTI), and DICOM
    files with no suffix or a numeric one (found by their DICM marker).

    Skipped with a reason instead of vanishing: files of the image formats in
    :data:`UNREAD_FORMATS` (NRRD, GIF, ...), and image names that are no regular file
    (a FIFO named ``x.png`` would block the run forever; it is never opened). Broken symbolic
    links and link loops are listed among the images, so that reading them reports them.
    Ignored: hidden files (names starting with ``.``, e.g. macOS ``._x.png`` resource forks,
    which share the suffix but are no images), folders, and files that are no images at all
    (``notes.txt``).
    """
    d = Path(folder)
    if not d.is_dir():
        raise InputError(f"{d} is not a folder")
    images: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for p in sorted(d.iterdir()):
        suffix = format_suffix(p)
        if p.name.startswith(".") or not (
            suffix in IMAGE_SUFFIXES or suffix in UNREAD_FORMATS or clinical_kind(p, sniff=True)
        ):
            continue
        try:
            mode = os.stat(p).st_mode
        except OSError:
            mode = None  # a broken link or a loop: reading it says which
        if mode is not None and stat.S_ISDIR(mode):
            continue
        kind = None if mode is None else _special_kind(mode)
        if kind:
            skipped.append((p, f"it is {kind}, not a regular file; not opened"))
        elif suffix in UNREAD_FORMATS:
            skipped.append((p, UNREAD_FORMATS[suffix]))
        else:
            images.append(p)
    return FolderScan(images, skipped)


def list_images(folder: PathLike) -> list[Path]:
    """The image files of ``folder`` to read (see :func:`scan_folder`), sorted."""
    return scan_folder(folder).images
