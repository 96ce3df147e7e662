"""A folder run with box prompts (``wavegms segment IN OUT --box ... | --boxes FILE``).

The images are those of the ordinary folder run (:mod:`wavegms.inference.folder_items`: one
per page, frame or slice), each segmented inside its boxes by
:func:`wavegms.inference.boxes.segment_boxes`, into the ordinary output layout
(:mod:`wavegms.inference.folder_outputs`): ``masks/<name>.png`` (binary, 0/255),
``soft/<name>.png`` and ``results.csv``, plus ``labels/<name>.png`` where box ``k`` is label
``k``. An image without a box is listed as skipped, not segmented whole.

A boxes file is CSV, one box per row: ``image,x0,y0,x1,y1`` (a header row is allowed). The
image is named by its file name (``a.png``: every plane of that file), or by its output name
(``a``, ``scan_page002``, ``<SOPInstanceUID>_f0003``: that plane only).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wavegms.core.errors import InputError, WaveGMSError
from wavegms.core.files import ensure_folder, os_error_reason, write_png, write_text
from wavegms.core.lock import folder_lock
from wavegms.core.progress import CancelToken, ProgressCallback, report
from wavegms.data.images import read_image
from wavegms.inference.boxes import DEFAULT_KEEP, DEFAULT_MARGIN, Box, parse_box, segment_boxes
from wavegms.inference.folder_items import FolderItem
from wavegms.inference.folder_outputs import (
    FolderReport,
    check_apart,
    csv_text,
    output_paths,
    refuse_existing,
    spacing_cells,
)
from wavegms.inference.folder_records import backend_of, digest, joined_record, png_text, record
from wavegms.scoring.uncertainty import uncertainty

LABELS_FOLDER = "labels"


def labels_path(out_dir: Path, name: str) -> Path:
    """``OUT/labels/<name>.png``: box ``k``'s mask as value ``k``."""
    return out_dir / LABELS_FOLDER / f"{name}.png"


def read_boxes_file(path: Path) -> dict[str, list[Box]]:
    """Image name -> its boxes, from a CSV of ``image,x0,y0,x1,y1`` rows (see the module
    docstring); a bad row is one line naming the file and the row."""
    boxes: dict[str, list[Box]] = {}
    try:
        rows = list(csv.reader(Path(path).read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the boxes file {path}: {os_error_reason(exc)}") from exc
    for number, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if number == 1 and len(cells) == 5 and not _is_number(cells[1]):
            continue  # a header row
        if len(cells) != 5 or not cells[0]:
            raise InputError(f"{path} row {number}: expected image,x0,y0,x1,y1, got {row}")
        try:
            box = parse_box(",".join(cells[1:]))
        except InputError as err:
            raise InputError(f"{path} row {number}: {err}") from None
        boxes.setdefault(cells[0], []).append(box)
    if not boxes:
        raise InputError(f"{path} holds no box (rows image,x0,y0,x1,y1)")
    return boxes


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def boxes_by_item(
    items: Sequence[FolderItem], boxes: dict[str, list[Box]] | Sequence[Box]
) -> dict[str, list[Box]]:
    """Each item's boxes: the same boxes for all (a list), or by name (a boxes file), whose
    names must all be images of the run."""
    if not isinstance(boxes, dict):
        return {item.name: list(boxes) for item in items}
    known = {item.name for item in items} | {item.image.name for item in items}
    unknown = sorted(set(boxes) - known)
    if unknown:
        raise InputError(
            f"the boxes name {len(unknown)} image(s) not in the input: {', '.join(unknown[:5])}"
        )
    return {
        item.name: [*boxes.get(item.image.name, []), *boxes.get(item.name, [])] for item in items
    }


def _segment_one(
    segmenter, item: FolderItem, boxes, out_dir: Path, settings: dict, overwrite: bool
) -> dict:
    if item.unread:
        raise InputError(item.unread)
    image = read_image(item.image, page=item.page)
    result = segment_boxes(segmenter, image, boxes, **settings)
    binary = result.labels > 0
    # What made the mask, as a folder run records it (results.csv and the mask PNG): both
    # models where a whole-image one was averaged in
    models = [segmenter, *([settings["whole"]] if settings["whole"] is not None else [])]
    made = record(joined_record(models), "+".join(dict.fromkeys(map(backend_of, models))),
                  segmenter.threshold, digest(item.image))  # fmt: skip
    mask_path, soft_path = output_paths(out_dir, item.name)
    write_png(soft_path, result.soft, overwrite=overwrite)
    write_png(labels_path(out_dir, item.name), result.labels, overwrite=overwrite)
    write_png(mask_path, binary, overwrite=overwrite, text=png_text(made))
    area = int(np.count_nonzero(binary))
    return {
        "name": item.name, "file": item.image.name, "height": binary.shape[0],
        "width": binary.shape[1], "mask_area": area, "uncertainty": uncertainty(result.soft),
        **spacing_cells(item.spacing, area), **made,
    }  # fmt: skip


def run_box_folder(
    segmenter,
    items: Sequence[FolderItem],
    boxes: dict[str, list[Box]] | Sequence[Box],
    out_dir: Path,
    *,
    whole=None,
    margin: float = DEFAULT_MARGIN,
    keep: str = DEFAULT_KEEP,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> FolderReport:
    """Segment ``items`` inside their ``boxes`` into ``out_dir`` (see the module docstring),
    each crop averaged with ``whole``'s soft mask of the whole image where a ``whole`` model
    is given (:func:`~wavegms.inference.boxes.segment_boxes`; the records name both models).
    Refused before any work like a folder run: outputs over inputs, existing outputs unless
    ``overwrite``, a folder in use; an image that cannot be read is listed as skipped."""
    items, out_dir = list(items), Path(out_dir)
    if not items:
        raise InputError("no images to segment")
    per_item = boxes_by_item(items, boxes)
    check_apart(items, out_dir)
    ensure_folder(out_dir)
    result = FolderReport(out_dir, len(items), segmenter.threshold, segmenter.image_size, False)
    with folder_lock(out_dir):
        if not overwrite:
            refuse_existing(items, out_dir)
        settings = {"margin": margin, "keep": keep, "whole": whole}
        for done, item in enumerate(items):
            if cancel is not None and cancel.cancelled:
                result.cancelled = True
                break
            report(progress, "segment", done, len(items), item.name)
            if not per_item[item.name]:
                result.skipped.append((item.image.name, f"{item.name}: no box given for it"))
                continue
            try:
                row = _segment_one(
                    segmenter, item, per_item[item.name], out_dir, settings, overwrite
                )
            except (WaveGMSError, OSError, ValueError) as err:
                result.skipped.append((item.image.name, str(err)))
                continue
            result.rows.append(row)
            result.masks.append(output_paths(out_dir, item.name)[0])
        report(progress, "segment", len(items), len(items))
        write_text(result.csv_path, csv_text(result.rows, {}, False))
    return result
