"""What a clinical file's header says, shared by the DICOM and NIfTI readers
(:mod:`wavegms.data.dicom`, :mod:`wavegms.data.nifti`) and the dispatcher over them
(:mod:`wavegms.data.clinical`), and the one way those readers import their optional library."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import NamedTuple

from wavegms.core.errors import ImageReadError


class ClinicalHeader(NamedTuple):
    """What a clinical file's header says, read without decoding a pixel."""

    planes: int  # 2D planes: frames of a DICOM, slices (last axis) of a NIfTI volume
    height: int
    width: int
    spacing: tuple[float, float] | None  # mm per pixel (row, column); None when not known
    plane_spacing: float | None  # mm between slices (NIfTI); None for frames in time
    uid: str | None  # the DICOM SOP Instance UID, when it can name files


def require(module: str, what: str, path: Path) -> ModuleType:
    """Import an optional reader library, or say in one line which extra installs it."""
    from wavegms.core.extras import require as require_extra

    try:
        return require_extra(module, f"reading {what} files")
    except ImportError as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc
