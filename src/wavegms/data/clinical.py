"""Clinical image files, DICOM and NIfTI: which files they are, what their headers say, and
their planes as viewers show them. :mod:`wavegms.data.images` routes these files here, so
every reader of images (folder runs, evaluate, napari) gets them the same way.

The two formats live in :mod:`wavegms.data.dicom` and :mod:`wavegms.data.nifti`; pydicom and
nibabel are optional (the ``clinical`` extra) and imported only when such a file is read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, TypeVar

import numpy as np

from wavegms.core.errors import ImageReadError
from wavegms.core.files import PathLike
from wavegms.data import dicom, nifti
from wavegms.data.clinical_header import ClinicalHeader

DICOM_SUFFIXES = (".dcm", ".dicom")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
CLINICAL_SUFFIXES = DICOM_SUFFIXES + NIFTI_SUFFIXES

#: a DICOM Part 10 file: a 128-byte preamble, then these four bytes
DICOM_MAGIC = b"DICM"

Kind = Literal["dicom", "nifti"]
T = TypeVar("T")


def format_suffix(path: PathLike) -> str:
    """The lower-case suffix that names a file's format (``.nii.gz`` counts as one)."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def file_stem(path: PathLike) -> str:
    """A file's name without its format suffix: ``a.nii.gz`` -> ``a`` (``Path.stem`` would
    keep ``a.nii``, so a volume would never pair with its mask ``a.png``)."""
    name = Path(path).name
    return name[: len(name) - len(format_suffix(name))] if format_suffix(name) else name


def has_dicom_magic(path: PathLike) -> bool:
    """Whether ``path`` is a readable regular file with the DICOM Part 10 marker (reads 132
    bytes; never opens anything but a regular file, so a FIFO cannot block)."""
    p = Path(path)
    try:
        if not p.is_file():
            return False
        with open(p, "rb") as f:
            return f.read(132)[128:] == DICOM_MAGIC
    except OSError:
        return False


def clinical_kind(path: PathLike, sniff: bool = False) -> Kind | None:
    """``"dicom"`` or ``"nifti"`` by the file's suffix, else None. With ``sniff``, a file
    with no suffix or a numeric one (scanners write ``IM0001`` or UIDs such as
    ``1.2.840.1234``) is DICOM when it has the DICM marker."""
    p = Path(path)
    suffix = format_suffix(p)
    if suffix in DICOM_SUFFIXES:
        return "dicom"
    if suffix in NIFTI_SUFFIXES:
        return "nifti"
    if sniff and (not suffix or suffix[1:].isdigit()) and has_dicom_magic(p):
        return "dicom"
    return None


def _module(kind: Kind) -> ModuleType:
    return dicom if kind == "dicom" else nifti


def _guarded(p: Path, read: Callable[..., T], *args: Any) -> T:
    """``read(p, *args)``, any failure one :class:`ImageReadError` line naming the file."""
    try:
        return read(p, *args)
    except ImageReadError:
        raise
    except MemoryError as exc:
        raise ImageReadError(f"cannot read image {p}: it does not fit into memory") from exc
    except Exception as exc:  # pydicom and nibabel raise many unrelated types
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise ImageReadError(f"cannot read image {p}: {text}") from exc


def _kind(p: Path, kind: Kind | None) -> Kind:
    kind = kind or clinical_kind(p, sniff=True)
    if kind is None:
        raise ImageReadError(f"cannot read image {p}: it is neither DICOM nor NIfTI")
    return kind


def read_header(path: PathLike, kind: Kind | None = None) -> ClinicalHeader:
    """The header of a DICOM or NIfTI file; any failure is one :class:`ImageReadError` line."""
    p = Path(path)
    return _guarded(p, _module(_kind(p, kind)).read_header)


def read_planes(
    path: PathLike,
    page: int | None = None,
    kind: Kind | None = None,
    header: ClinicalHeader | None = None,
) -> np.ndarray:
    """A clinical file as viewers show it, float32 in [0, 1] (grey) or RGB: one plane
    ``H x W[ x 3]`` when it has one or ``page`` picks one, else a stack ``N x H x W[ x 3]``.

    Each format's ``read_planes(path, page, header)`` gives plane ``page``, or the stack of
    all planes when ``page`` is None. ``header``: the file's, when the caller has read it."""
    p = Path(path)
    kind = _kind(p, kind)
    header = header or read_header(p, kind)
    if page is not None and not 0 <= page < header.planes:
        raise ImageReadError(
            f"cannot read image {p}: it has no plane {page} (planes 0 to {header.planes - 1})"
        )
    planes = _guarded(p, _module(kind).read_planes, page, header)
    if page is None and header.planes == 1:
        planes = planes[0]  # one plane is an image, not a stack of one
    if not np.isfinite(planes).all():
        planes = np.nan_to_num(planes, nan=0.0, posinf=1.0, neginf=0.0)
    return planes
