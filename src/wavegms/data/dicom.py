"""DICOM images as viewers show them (through :mod:`wavegms.data.clinical`).

Grey images go through the DICOM display pipeline (PS3.4 N.2): the modality transform
(Modality LUT, or Rescale Slope/Intercept), then the VOI transform (the first Window
Centre/Width with its VOI LUT Function, or else the first VOI LUT), then MONOCHROME1 is
inverted, so that bright means what it means on the scanner's screen. Without any VOI, 8-bit
data is shown as stored and wider data stretched by each frame's own range, as viewers do.
Colour images come out RGB: YBR is converted by pydicom, PALETTE COLOR through its LUT.

Attributes are looked up as enhanced multi-frame files keep them: the frame's own functional
groups first, then the shared ones, then the top level.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wavegms.core.errors import ImageReadError
from wavegms.data.clinical_header import ClinicalHeader, require

#: a UID that can name files: digits and dots, at most 64 characters (PS3.5 9.1)
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def _datasets(ds: Any, frame: int) -> list[Any]:
    """Where an attribute of ``frame`` may live, nearest first."""
    found = []
    for name, index in (("PerFrameFunctionalGroupsSequence", frame),
                        ("SharedFunctionalGroupsSequence", 0)):  # fmt: skip
        groups = ds.get(name)
        if groups and index < len(groups):
            found += [e.value[0] for e in groups[index] if e.VR == "SQ" and len(e.value)]
    return [*found, ds]


def _find(ds: Any, keyword: str, frame: int = 0) -> Any:
    for item in _datasets(ds, frame):
        value = item.get(keyword)
        if value is not None and value != "":
            return value
    return None


def _first(value: Any) -> float:
    """The first of a multi-valued number (Window Centre may list several presets)."""
    if isinstance(value, Sequence) and not isinstance(value, str):  # pydicom's MultiValue
        value = value[0]
    return float(value)


def _positive_pair(values: Any) -> tuple[float, float] | None:
    try:
        row, col = (abs(float(v)) for v in values)
    except (TypeError, ValueError):
        return None
    return (row, col) if all(math.isfinite(v) and v > 0 for v in (row, col)) else None


def pixel_spacing(ds: Any) -> tuple[float, float] | None:
    """mm per pixel (row, column): Pixel Spacing, else Imager Pixel Spacing (projection
    images, at the detector), else the first ultrasound region calibrated in cm."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = _find(ds, keyword)
        if value is not None and (pair := _positive_pair(value)):
            return pair
    for region in ds.get("SequenceOfUltrasoundRegions") or []:
        units = (region.get("PhysicalUnitsYDirection"), region.get("PhysicalUnitsXDirection"))
        if units == (3, 3):  # 3: cm (PS3.3 C.8.5.5.1.15)
            pair = _positive_pair((region.get("PhysicalDeltaY"), region.get("PhysicalDeltaX")))
            if pair:
                return pair[0] * 10.0, pair[1] * 10.0
    return None


def _frame_count(ds: Any, path: Path) -> int:
    """Number of Frames, checked: a count below 1 would make the file vanish from a folder
    run without a word."""
    value = ds.get("NumberOfFrames")
    if value is None or value == "":
        return 1
    try:
        frames = int(value)
    except (TypeError, ValueError):
        frames = 0
    if frames < 1:
        raise ImageReadError(
            f"cannot read image {path}: its NumberOfFrames is {value!r}, not a count of frames; "
            "the header is damaged: correct the tag or export the image again"
        )
    return frames


def _check_pixel_bytes(ds: Any, path: Path, frames: int) -> None:
    """The header's frames must fit into the file: an uncompressed file holds every byte it
    declares (a deflated one a 1032th of them), a compressed one at least a fragment header
    per frame. Checked before any pixel
    is read, so that a file claiming 5,000 frames and holding one fails once, not per frame."""
    rows, columns = int(ds.Rows), int(ds.Columns)
    if rows < 1 or columns < 1:
        raise ImageReadError(f"cannot read image {path}: it declares {rows} x {columns} pixels")
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    compressed = bool(getattr(syntax, "is_compressed", False))
    samples, bits = int(ds.get("SamplesPerPixel") or 1), int(ds.get("BitsAllocated") or 16)
    needed = 8 * frames if compressed else -(-frames * rows * columns * samples * bits // 8)
    if getattr(syntax, "is_deflated", False):  # the whole data set zipped: at most ~1032:1
        needed //= 1032
    size = path.stat().st_size
    if needed > size:
        raise ImageReadError(
            f"cannot read image {path}: its header declares {frames} frame(s) of "
            f"{rows} x {columns} ({needed} bytes) but the file has {size} bytes; it is "
            "truncated or its NumberOfFrames is wrong"
        )


def read_header(path: Path) -> ClinicalHeader:
    pydicom = require("pydicom", "DICOM", path)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    if "Rows" not in ds or "Columns" not in ds:
        raise ImageReadError(f"cannot read image {path}: the DICOM file holds no image")
    uid = str(ds.get("SOPInstanceUID") or "")
    frames = _frame_count(ds, path)
    _check_pixel_bytes(ds, path, frames)
    return ClinicalHeader(
        planes=frames,
        height=int(ds.Rows),
        width=int(ds.Columns),
        spacing=pixel_spacing(ds),
        plane_spacing=None,  # frames of a cine loop are time, not depth
        uid=uid if len(uid) <= 64 and _UID.fullmatch(uid) else None,
    )


def _modality(ds: Any, stored: np.ndarray, frame: int) -> np.ndarray:
    """Stored values -> modality values (e.g. Hounsfield units), float64."""
    if "ModalityLUTSequence" in ds:
        from pydicom.pixels import apply_modality_lut

        return np.asarray(apply_modality_lut(stored, ds), np.float64)
    slope = _find(ds, "RescaleSlope", frame)
    intercept = _find(ds, "RescaleIntercept", frame)
    values = stored.astype(np.float64)
    if slope is not None:
        values *= _rescale(slope, "RescaleSlope", nonzero=True)
    if intercept is not None:
        values += _rescale(intercept, "RescaleIntercept", nonzero=False)
    return values


def _rescale(value: Any, keyword: str, nonzero: bool) -> float:
    """A Rescale Slope or Intercept that maps stored values to distinct modality values. A
    slope of 0 (or NaN) would make every pixel one value: a blank image segmented in silence."""
    number = _first(value)
    if not math.isfinite(number) or (nonzero and number == 0):
        raise ValueError(  # clinical._guarded names the file
            f"its {keyword} is {number:g}, which maps every pixel to one value; the file's "
            "header is damaged: correct the tag or export the image again"
        )
    return number


def _window(x: np.ndarray, centre: float, width: float, function: str) -> np.ndarray | None:
    """The VOI window of PS3.3 C.11.2.1.2 onto [0, 1]; None for a width it does not allow."""
    if function == "SIGMOID" and width > 0:
        return 1.0 / (1.0 + np.exp(-4.0 * (x - centre) / width))
    if function == "LINEAR_EXACT" and width > 0:
        return np.clip((x - centre) / width + 0.5, 0.0, 1.0)
    if function == "LINEAR" and width >= 1:
        if width == 1:  # a threshold at the centre
            return (x > centre - 0.5).astype(np.float64)
        return np.clip((x - (centre - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)
    return None


def _voi_lut(ds: Any, values: np.ndarray) -> np.ndarray:
    """The first VOI LUT (PS3.3 C.11.2.1.1) onto [0, 1]: values below its first entry take
    the first, values past its end the last. Done here rather than by pydicom, which wraps
    values past the LUT's integer type around before clipping them."""
    item = ds.VOILUTSequence[0]
    entries, first, bits = (int(v) for v in item.LUTDescriptor)
    entries = entries or 65536  # 0 means 2^16 entries
    data = item.LUTData
    if isinstance(data, bytes):  # OW: 16-bit words in the file's byte order
        little = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        order = "<" if little is None or little.is_little_endian else ">"
        lut = np.frombuffer(data, f"{order}u2")
    else:
        lut = np.atleast_1d(np.asarray(data, np.float64))  # US: pydicom gives the numbers
    lut = lut[:entries].astype(np.float64)
    index = np.clip(np.rint(values) - first, 0, len(lut) - 1).astype(np.int64)
    return lut[index] / float(2**bits - 1)


def _voi(ds: Any, values: np.ndarray, stored: np.ndarray, frame: int) -> np.ndarray:
    """Modality values -> displayed grey in [0, 1]."""
    centre, width = _find(ds, "WindowCenter", frame), _find(ds, "WindowWidth", frame)
    if centre is not None and width is not None:
        centre, width = _first(centre), _first(width)
        function = str(_find(ds, "VOILUTFunction", frame) or "LINEAR").upper()
        # A NaN or infinite window shows nothing: ignored, as viewers do, like a bad width.
        usable = math.isfinite(centre) and math.isfinite(width)
        shown = _window(values, centre, width, function) if usable else None
        if shown is not None:
            return shown
    if "VOILUTSequence" in ds:
        return _voi_lut(ds, values)
    bits = int(ds.get("BitsStored") or 16)
    unchanged = not ds.get("PixelRepresentation") and np.array_equal(values, stored)
    if bits <= 8 and unchanged:
        return values / float(2**bits - 1)  # 8-bit data is shown as it is stored
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    return (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)


def _colour(ds: Any, plane: np.ndarray) -> np.ndarray:
    if plane.dtype == np.uint8:
        return plane.astype(np.float32) / np.float32(255.0)
    if np.issubdtype(plane.dtype, np.integer):
        bits = int(ds.get("BitsStored") or np.iinfo(plane.dtype).bits)
        if str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR":
            bits = np.iinfo(plane.dtype).bits  # the palette's entries fill their type
        return (plane.astype(np.float64) / float(2**bits - 1)).astype(np.float32)
    return np.clip(plane, 0.0, 1.0).astype(np.float32)


def _display(ds: Any, plane: np.ndarray, frame: int) -> np.ndarray:
    """One decoded frame as a viewer shows it, float32 in [0, 1]."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        plane = apply_color_lut(plane, ds)
    if plane.ndim == 3:
        return _colour(ds, plane)
    shown = _voi(ds, _modality(ds, plane, frame), plane, frame)
    if photometric == "MONOCHROME1":  # the lowest value is white
        shown = 1.0 - shown
    return np.clip(shown, 0.0, 1.0).astype(np.float32)


def read_planes(path: Path, page: int | None, header: ClinicalHeader) -> np.ndarray:
    """Frame ``page`` as viewers show it, or the stack of all frames when ``page`` is None;
    pydicom decodes only the frame asked for."""
    pydicom = require("pydicom", "DICOM", path)
    from pydicom.pixels import pixel_array

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    if page is not None:
        return _display(ds, pixel_array(path, index=page), page)
    frames = pixel_array(path)
    if header.planes == 1:
        frames = frames[None]
    return np.stack([_display(ds, frame, k) for k, frame in enumerate(frames)])
