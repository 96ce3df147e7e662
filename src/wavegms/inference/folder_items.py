"""What a folder run reads: one item per image (or per page of a multi-page TIFF), with its
ground-truth mask when the run is scored, and the files found but not read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wavegms.core.errors import InputError, WaveGMSError
from wavegms.core.files import PathLike
from wavegms.data.images import IMAGE_SUFFIXES, page_count, scan_folder


@dataclass(frozen=True)
class FolderItem:
    """One image to segment, named by its outputs' stem, with its ground truth if scored.

    ``page`` picks one plane of a multi-page TIFF; ``unread`` says why a file found in the
    folder is not read at all (it is listed as skipped with that reason).
    """

    name: str
    image: Path
    mask: Path | None = None
    page: int | None = None
    unread: str | None = None


def _image_items(path: Path) -> list[FolderItem]:
    """One item per plane: a multi-page TIFF ``scan.tif`` of N pages gives the masks
    ``scan_page001.png`` .. ``scan_pageN.png``; any other image one item named by its stem."""
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
    one item per page of a multi-page TIFF, and the files not read (DICOM, NIfTI, GIF, a FIFO
    named ``.png``) as items that are listed as skipped with their reason."""
    in_dir = Path(in_dir)
    if not in_dir.is_dir():
        raise InputError(f"input folder {in_dir} does not exist or is not a folder")
    scan = scan_folder(in_dir)
    if not scan.images:
        why = f"; skipped {scan.skipped[0][0].name}: {scan.skipped[0][1]}" if scan.skipped else ""
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {in_dir}{why}")
    items = [item for p in scan.images for item in _image_items(p)]
    # The full file name, not the stem: a.dcm never takes the name of a.png's masks.
    items += [FolderItem(p.name, p, unread=why) for p, why in scan.skipped]
    return items


def pair_items(pairs: Iterable[Any]) -> list[FolderItem]:
    """Image/mask pairs (``wavegms.data.pairs.Pair`` or alike: name, image, mask), scored."""
    return [FolderItem(str(p.name), Path(p.image), Path(p.mask)) for p in pairs]
