"""NIfTI images and volumes as viewers show them (through :mod:`wavegms.data.clinical`).

A 2D image is one plane; a 3D volume is segmented slice by slice along its last axis. A slice
is the voxel array ``data[:, :, k]`` as stored, not reoriented: pixel (row r, column c) of
slice k is voxel (r, c, k), so a mask maps back onto the volume without any transform.
Intensities (with the header's scaling) are stretched by the range of the whole volume, as
viewers set one contrast for all slices, so slices keep their brightness relative to each
other. Spacing is the header's voxel size in mm; a file whose units are unknown has none,
since guessing mm would give areas that are silently wrong.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np

from wavegms.core.errors import ImageReadError
from wavegms.data.clinical_header import ClinicalHeader, require

#: NIfTI spatial units -> mm
_MM = {"mm": 1.0, "meter": 1000.0, "micron": 0.001}


def _image(path: Path) -> tuple[Any, tuple[int, ...]]:
    """The image (pixels stay on disk) and its shape without trailing axes of length 1."""
    nib = require("nibabel", "NIfTI", path)
    img = nib.load(path)
    shape = tuple(int(n) for n in img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) not in (2, 3):
        raise ImageReadError(
            f"cannot read image {path}: it is a {len(shape)}D NIfTI {shape}; only 2D images "
            "and 3D volumes are read (split a time series into volumes first)"
        )
    if not np.issubdtype(img.get_data_dtype(), np.number):
        raise ImageReadError(
            f"cannot read image {path}: NIfTI data type {img.get_data_dtype()} is not read"
        )
    return img, shape


#: the most a deflate stream can expand (about 1032:1): a .nii.gz declaring more voxel bytes
#: than this many times its size cannot hold them
_MAX_DEFLATE_RATIO = 1032


def _check_voxel_bytes(path: Path, img: Any, shape: tuple[int, ...]) -> None:
    """The voxels the header declares must fit into the file, checked before any slice is
    read: a 265 KB file declaring 64x64x30000 voxels would otherwise be listed as 30,000
    slices, each read and failed in turn."""
    needed = int(np.prod(shape, dtype=object)) * img.get_data_dtype().itemsize
    size = path.stat().st_size
    offset = int(getattr(img.dataobj, "offset", 0) or 0)
    if path.name.lower().endswith(".gz"):
        room = size * _MAX_DEFLATE_RATIO
        with open(path, "rb") as f:  # gzip's trailer: the unpacked size modulo 2^32
            f.seek(max(0, size - 4))
            unpacked = int.from_bytes(f.read(4), "little")
        if offset + needed < 2**32 and unpacked:  # 0: a blocked gzip's empty last member
            room = min(room, unpacked)
    else:
        room = size
    if offset + needed > room:
        dims = " x ".join(str(n) for n in shape)
        raise ImageReadError(
            f"cannot read image {path}: its header declares {dims} voxels ({needed} bytes) "
            f"but the file holds at most {max(0, room - offset)}; it is truncated or its "
            "header is damaged"
        )


def _mm(value: float, factor: float) -> float | None:
    mm = abs(float(value)) * factor
    return mm if math.isfinite(mm) and mm > 0 else None


def read_header(path: Path) -> ClinicalHeader:
    img, shape = _image(path)
    _check_voxel_bytes(path, img, shape)
    factor = _MM.get(img.header.get_xyzt_units()[0])
    # float32 in the header: its shortest decimal (0.1, not 0.10000000149) is what was meant
    zooms = [float(str(np.float32(z))) for z in img.header.get_zooms()[:3]]
    spacing = plane_spacing = None
    if factor is not None:
        row, col = _mm(zooms[0], factor), _mm(zooms[1], factor)
        spacing = (row, col) if row and col else None
        plane_spacing = _mm(zooms[2], factor) if len(shape) == 3 else None
    planes = shape[2] if len(shape) == 3 else 1
    return ClinicalHeader(planes, shape[0], shape[1], spacing, plane_spacing, None)


@functools.lru_cache(maxsize=8)
def _volume_range(path: str, mtime_ns: int, size: int) -> tuple[float, float]:
    """The finite (min, max) of a whole volume; cached per file version, because a folder run
    reads the volume slice by slice."""
    data = np.asanyarray(_image(Path(path))[0].dataobj)
    finite = data[np.isfinite(data)] if np.issubdtype(data.dtype, np.floating) else data
    if finite.size == 0:
        return 0.0, 0.0
    return float(finite.min()), float(finite.max())


def _shown(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Intensities -> [0, 1] with the volume's range (kept when it already lies in [0, 1])."""
    out = np.asarray(values, np.float64)
    if not (lo >= 0.0 and hi <= 1.0):
        out = (out - lo) / (hi - lo) if hi > lo else np.zeros_like(out)
    return np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0).astype(np.float32)


def read_planes(path: Path, page: int | None, header: ClinicalHeader) -> np.ndarray:
    """Slice ``page`` (``data[:, :, page]``), or all slices as a stack ``(Z, H, W)``."""
    img, shape = _image(path)
    st = path.stat()
    lo, hi = _volume_range(str(path), st.st_mtime_ns, st.st_size)
    if page is not None:
        index = (slice(None), slice(None), page) if len(img.shape) > 2 else (...,)
        plane = np.asanyarray(img.dataobj[index]).reshape(shape[:2])
        return _shown(plane, lo, hi)
    volume = np.asanyarray(img.dataobj).reshape(shape)
    if volume.ndim == 2:
        volume = volume[..., None]
    return _shown(np.moveaxis(volume, -1, 0), lo, hi)
