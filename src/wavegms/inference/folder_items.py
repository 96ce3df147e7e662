"""What a folder run reads: one item per image (or per page of a multi-page TIFF, frame of a
DICOM, slice of a NIfTI volume), with its ground-truth mask when the run is scored, its pixel
spacing when its file has one, and the files found but not read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wavegms.core.errors import InputError, WaveGMSError
from wavegms.core.files import PathLike
from wavegms.data.clinical import CLINICAL_SUFFIXES, clinical_kind, read_header
from wavegms.data.images import IMAGE_SUFFIXES, page_count, scan_folder


@dataclass(frozen=True)
class FolderItem:
    """One image to segment, named by its outputs' stem, with its ground truth if scored.

    ``page`` picks one plane of a multi-page file; ``spacing`` is mm per pixel (row,
    column) when the file says (DICOM, NIfTI); ``unread`` says why a file found in the
    folder is not read at all (it is listed as skipped with that reason).
    """

    name: str
    image: Path
    mask: Path | None = None
    page: int | None = None
    unread: str | None = None
    spacing: tuple[float, float] | None = None


def _clinical_items(path: Path, shared_uid: bool = False) -> list[FolderItem]:
    """One item per plane of a DICOM or NIfTI file, named as its masks will be.

    DICOM: ``<SOPInstanceUID>_f0001`` .. (frames numbered from 1, as DICOM numbers them; the
    file's stem when it has no usable UID). NIfTI: ``<stem>_z0000`` .. for the slices
    ``data[:, :, k]`` of a volume (numbered from 0, as voxel indices are), ``<stem>`` for a 2D
    image. A file whose header cannot be read is one item listed as skipped with the error.
    ``shared_uid``: another file of the folder has the same UID (a copy, or a scanner that
    reuses them): the names take the file's name too, ``<UID>_<file name>_f0001``, so that
    both are segmented and no mask is written over another.
    """
    try:
        header = read_header(path)
    except WaveGMSError as err:
        return [FolderItem(path.name, path, unread=str(err))]
    if clinical_kind(path, sniff=True) == "dicom":
        base, tag, first = header.uid or path.stem or path.name, "f", 1
        if shared_uid and header.uid:
            base = f"{header.uid}_{path.name}"
    else:
        gz = path.name.lower().endswith(".nii.gz")
        base, tag, first = path.name[: -len(".nii.gz")] if gz else path.stem, "z", 0
        if header.planes == 1:
            return [FolderItem(base, path, spacing=header.spacing)]
    digits = max(4, len(str(header.planes)))
    return [
        FolderItem(f"{base}_{tag}{k + first:0{digits}d}", path, page=k, spacing=header.spacing)
        for k in range(header.planes)
    ]


def _image_items(path: Path) -> list[FolderItem]:
    """One item per plane: a multi-page TIFF ``scan.tif`` of N pages gives the masks
    ``scan_page001.png`` .. ``scan_pageN.png``; any other image one item named by its stem;
    DICOM and NIfTI files as :func:`_clinical_items` names them."""
    if clinical_kind(path, sniff=True):
        return _clinical_items(path)
    try:
        pages = page_count(path)
    except WaveGMSError:
        pages = 1  # reading it later reports what is wrong with it
    if pages == 1:
        return [FolderItem(path.stem, path)]
    digits = max(3, len(str(pages)))
    return [FolderItem(f"{path.stem}_page{k + 1:0{digits}d}", path, page=k) for k in range(pages)]


def folder_items(in_dir: PathLike) -> list[FolderItem]:
    """Every image of a folder, unscored (see :func:`~wavegms.data.images.scan_folder`):
    one item per page of a multi-page TIFF, frame of a DICOM or slice of a NIfTI volume, and
    the files not read (GIF, a FIFO named ``.png``, a DICOM whose header is damaged) as items
    that are listed as skipped with their reason."""
    in_dir = Path(in_dir)
    if not in_dir.is_dir():
        raise InputError(f"input folder {in_dir} does not exist or is not a folder")
    scan = scan_folder(in_dir)
    if not scan.images:
        why = f"; skipped {scan.skipped[0][0].name}: {scan.skipped[0][1]}" if scan.skipped else ""
        kinds = ", ".join(IMAGE_SUFFIXES + CLINICAL_SUFFIXES)
        raise InputError(f"no images ({kinds}) in {in_dir}{why}")
    items = [item for p in scan.images for item in _image_items(p)]
    items = _apart(items)
    # The full file name, not the stem: a.dcm never takes the name of a.png's masks.
    items += [FolderItem(p.name, p, unread=why) for p, why in scan.skipped]
    return items


def _apart(items: list[FolderItem]) -> list[FolderItem]:
    """``items`` with the DICOM files that share a SOP Instance UID named apart (their mask
    names come from the UID, so renaming the files could not help)."""
    files_by_name: dict[str, set[Path]] = {}
    for item in items:
        files_by_name.setdefault(item.name, set()).add(item.image)
    clashing = {p for files in files_by_name.values() if len(files) > 1 for p in files}
    shared = {p for p in clashing if clinical_kind(p, sniff=True) == "dicom"}
    if not shared:
        return items
    by_file: dict[Path, list[FolderItem]] = {}  # files in order, each with its items
    for item in items:
        by_file.setdefault(item.image, []).append(item)
    return [
        item
        for path, own in by_file.items()
        for item in (_clinical_items(path, shared_uid=True) if path in shared else own)
    ]


def pair_items(pairs: Iterable[Any]) -> list[FolderItem]:
    """Image/mask pairs (``wavegms.data.pairs.Pair`` or alike: name, image, mask), scored."""
    return [
        FolderItem(str(p.name), Path(p.image), Path(p.mask), spacing=_spacing(Path(p.image)))
        for p in pairs
    ]


def _spacing(image: Path) -> tuple[float, float] | None:
    """The pixel spacing of a DICOM or NIfTI image (None for others and unreadable ones)."""
    if not clinical_kind(image, sniff=True):
        return None
    try:
        return read_header(image).spacing
    except WaveGMSError:
        return None  # reading the image reports what is wrong with it
