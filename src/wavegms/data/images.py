"""Reading image files as viewers show them, and finding the images of a folder.

Every failure a user can cause (a missing file, a file that is not an image, an array of the
wrong shape) raises a :mod:`wavegms.core.errors` exception whose message names the file or the
problem, never a bare ``OSError`` from Pillow or imageio.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from wavegms.core.errors import ImageReadError, InputError
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
        frames = int(getattr(im, "n_frames", 1) or 1)
        if frames > 1:  # an animated PNG: its first frame only would be segmented
            raise ImageReadError(
                f"cannot read image {p}: it is an animation of {frames} frames, which is not "
                "read (like GIF); save the frame you want as a PNG"
            )
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
