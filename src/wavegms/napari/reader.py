"""The npe2 reader: DICOM and NIfTI files open in napari as viewers show them, at their
physical scale (mm), decoded by the same code as every folder run
(:func:`wavegms.data.images.read_image`), so what is seen is what is segmented.

A multi-frame DICOM or a NIfTI volume opens as one stack layer (frames, or slices along the
volume's last axis, on the first axis); the pixel spacing, the SOP Instance UID and the
number of frames travel in the layer's metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from wavegms.data.clinical import clinical_kind, read_header
from wavegms.data.images import read_image

LayerData = tuple[Any, dict, str]


def _paths(path: str | Sequence[str]) -> list[Path]:
    return [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]


def get_reader(path: str | Sequence[str]) -> Callable[[Any], list[LayerData]] | None:
    """:func:`read_clinical` when every path is a DICOM or NIfTI file, else None; decides by
    the suffix (or the DICM marker of a file with no suffix), never decoding a pixel."""
    paths = _paths(path)
    if not paths or not all(clinical_kind(p, sniff=True) for p in paths):
        return None
    return read_clinical


def layer_data(path: Path) -> LayerData:
    """One image layer of a clinical file, with ``scale`` from its spacing (1 where unknown)."""
    header = read_header(path)
    data = read_image(path)
    stack = header.planes > 1
    rgb = data.ndim == (4 if stack else 3)
    scale = list(header.spacing or (1.0, 1.0))
    if stack:
        scale.insert(0, header.plane_spacing or 1.0)  # frames in time: one step per frame
    metadata = {
        "spacing_mm": header.spacing,
        "sop_instance_uid": header.uid,
        "frames": header.planes,
        "source_file": str(path),
    }
    name = path.name[: -len(".gz")] if path.name.lower().endswith(".gz") else path.name
    kwargs: dict[str, Any] = {
        "name": Path(name).stem, "scale": scale, "rgb": rgb, "metadata": metadata,
    }  # fmt: skip
    if not rgb:
        kwargs["contrast_limits"] = (0.0, 1.0)  # the viewer's window is already applied
    return data, kwargs, "image"


def read_clinical(path: str | Sequence[str]) -> list[LayerData]:
    """The layers of the DICOM and NIfTI files at ``path`` (one path or several)."""
    return [layer_data(p) for p in _paths(path)]
