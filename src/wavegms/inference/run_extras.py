"""What a segment run adds beside its masks, from the masks it wrote: ``lesions.csv`` (one row
per connected lesion, :mod:`wavegms.scoring.lesions`) and the masks in the geometry of their
DICOM or NIfTI sources (:mod:`wavegms.inference.source_geometry`): ``OUT/nifti/<stem>.nii.gz``
and ``OUT/dicom/<stem>_seg.dcm``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wavegms.core.errors import WaveGMSError
from wavegms.core.files import write_text
from wavegms.data.clinical import clinical_kind, file_stem, format_suffix
from wavegms.data.images import read_image
from wavegms.inference.box_folder import labels_path
from wavegms.inference.folder_items import FolderItem
from wavegms.inference.folder_outputs import FolderReport, output_paths
from wavegms.inference.source_geometry import write_dicom_seg, write_nifti_mask
from wavegms.scoring.lesions import LESIONS_CSV, lesions_csv, measure_lesions


def written_labels(out_dir: Path, name: str) -> np.ndarray:
    """The labels a run wrote for ``name``: ``labels/<name>.png`` of a box run, else the
    binary ``masks/<name>.png`` as label 1."""
    path = labels_path(out_dir, name)
    if path.is_file():
        return np.asarray(read_image(path)).astype(np.uint16)
    return (read_image(output_paths(out_dir, name)[0]) > 0).astype(np.uint16)


def write_lesions(report: FolderReport, items: Sequence[FolderItem]) -> Path:
    """``OUT/lesions.csv``: every lesion of every mask the run wrote, in mm where the item's
    spacing is known."""
    spacing = {item.name: item.spacing for item in items}
    rows: list[dict] = []
    for row in report.rows:
        name = row["name"]
        labels = written_labels(report.out_dir, name)
        rows += measure_lesions(labels, spacing.get(name), name=name)
    return write_text(report.out_dir / LESIONS_CSV, lesions_csv(rows))


def _planes_by_source(items: Sequence[FolderItem]) -> dict[Path, list[FolderItem]]:
    by_source: dict[Path, list[FolderItem]] = defaultdict(list)
    for item in items:
        if not item.unread and clinical_kind(item.image, sniff=True):
            by_source[item.image].append(item)
    return by_source


def _source_labels(
    source: Path, planes: list[FolderItem], out_dir: Path, done: set[str]
) -> np.ndarray:
    """The labels of every plane of ``source``, as its format stacks them: a NIfTI volume's
    slices on the last axis, a DICOM's frames on the first."""
    missing = [item.name for item in planes if item.name not in done]
    if missing:
        raise WaveGMSError(
            f"no {clinical_kind(source, sniff=True).upper()} mask of {source.name}: "
            f"{len(missing)} of its {len(planes)} planes were not segmented ({missing[0]})"
        )
    ordered = sorted(planes, key=lambda item: item.page or 0)
    stack = [written_labels(out_dir, item.name) for item in ordered]
    if len(stack) == 1 and ordered[0].page is None:
        return stack[0]
    axis = -1 if clinical_kind(source, sniff=True) == "nifti" else 0
    return np.stack(stack, axis=axis)


def write_source_outputs(
    report: FolderReport,
    items: Sequence[FolderItem],
    formats: Sequence[str],
    overwrite: bool = False,
    model: str = "Wave-GMS",
) -> tuple[list[Path], list[str]]:
    """The NIfTI masks of NIfTI sources (``"nifti"`` in ``formats``) and DICOM SEGs of DICOM
    sources (``"dcm"``); returns (files written, one line per source that got none, why)."""
    done = {row["name"] for row in report.rows}
    written: list[Path] = []
    problems: list[str] = []
    for source, planes in _planes_by_source(items).items():
        kind = clinical_kind(source, sniff=True)
        if (kind == "nifti" and "nifti" not in formats) or (
            kind == "dicom" and "dcm" not in formats
        ):
            continue
        try:
            labels = _source_labels(source, planes, report.out_dir, done)
            if kind == "nifti":
                out = report.out_dir / "nifti" / f"{file_stem(source)}{format_suffix(source)}"
                written.append(write_nifti_mask(source, labels, out, overwrite))
            else:
                out = report.out_dir / "dicom" / f"{file_stem(source)}_seg.dcm"
                written.append(write_dicom_seg(source, labels, out, overwrite, model))
        except (WaveGMSError, OSError) as err:
            problems.append(str(err))
    return written, problems
