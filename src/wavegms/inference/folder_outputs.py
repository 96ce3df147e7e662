"""The output folder of a folder run: its layout, its table, the report of what was done,
and its rules: outputs never go into or over a folder the run reads, never replace existing
files unless asked, and a resumed run keeps what the interrupted one finished."""

from __future__ import annotations

import csv
import io as _stdio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wavegms.core.errors import InputError, OutputExistsError, WaveGMSError
from wavegms.data.images import read_image
from wavegms.inference.folder_items import FolderItem
from wavegms.inference.folder_records import (
    RECORD_COLUMNS,
    ModelRecord,
    check_same_run,
    digest,
    read_png_record,
)
from wavegms.scoring.scores import SCORE_KEYS, SUMMARY_KEYS, score_table
from wavegms.scoring.uncertainty import uncertainty

RESULTS_CSV = "results.csv"


SUMMARY_JSON = "summary.json"


IMAGE_COLUMNS = (
    "name", "file", "height", "width", "mask_area",
    "row_spacing_mm", "col_spacing_mm", "mask_area_mm2", "uncertainty",
    *RECORD_COLUMNS, "note",
)  # fmt: skip


def spacing_cells(spacing: tuple[float, float] | None, mask_area: int) -> dict:
    """The spacing columns of a row: mm per pixel (row, column) and the mask's area in mm²,
    empty when the image file gives no spacing (PNG, JPEG; DICOM or NIfTI without one)."""
    if spacing is None:
        return {"row_spacing_mm": None, "col_spacing_mm": None, "mask_area_mm2": None}
    row, col = spacing
    return {"row_spacing_mm": row, "col_spacing_mm": col, "mask_area_mm2": mask_area * row * col}


def output_paths(out_dir: Path, name: str) -> tuple[Path, Path]:
    """``OUT/masks/<name>.png`` (binary 0/255) and ``OUT/soft/<name>.png`` (soft, 0-255)."""
    return out_dir / "masks" / f"{name}.png", out_dir / "soft" / f"{name}.png"


@dataclass
class FolderReport:
    """What a run did: a row per image written, the files skipped, the scores if scored."""

    out_dir: Path
    total: int  # images asked for
    threshold: float
    model_size: int
    scored: bool
    model: ModelRecord = field(default_factory=ModelRecord)  # what the masks are made with
    rows: list[dict] = field(default_factory=list)  # CSV rows, in input order
    flagged: list[dict] = field(default_factory=list)  # rows of images without signal
    masks: list[Path] = field(default_factory=list)  # binary masks written, in input order
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (input file name, why)
    cancelled: bool = False
    kept: int = 0  # masks a resumed run kept from the interrupted one
    scores: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (mean, std)

    @property
    def written(self) -> int:
        return len(self.masks)

    @property
    def csv_path(self) -> Path:
        return self.out_dir / RESULTS_CSV

    @property
    def summary_path(self) -> Path | None:
        return self.out_dir / SUMMARY_JSON if self.scored else None

    def summary(self) -> str:
        state = "cancelled after" if self.cancelled else "done:"
        lines = [
            f"{state} {self.written} of {self.total} image(s) segmented into "
            f"{self.out_dir / 'masks'} and {self.out_dir / 'soft'}; table {self.csv_path}"
        ]
        if self.kept:
            lines.append(f"{self.kept} of them kept from the interrupted run (resumed)")
        if self.scores:
            lines.append(
                f"scores over {self.written} image(s), threshold {self.threshold:g}: "
                "mean DSC, IoU and HD95 ± std"
            )
            lines += score_table(self.scores, self.model_size)
        if self.skipped:
            lines.append(f"{len(self.skipped)} file(s) skipped:")
            lines += [f"  {name}: {why}" for name, why in self.skipped]
        return printable("\n".join(lines))


def _folders_read(items: Sequence[FolderItem]) -> set[Path]:
    """The real folders a run reads, with the ground truth beside a dataset's ``images/``
    folder (``D/masks`` next to ``D/images``): a run without scores must not write there
    either."""
    folders = set()
    for item in items:
        folders.update(p.parent.resolve() for p in (item.image, item.mask) if p is not None)
        images = item.image.parent.resolve()
        if images.name == "images":
            folders.add((images.parent / "masks").resolve())
    return folders


def check_apart(items: Sequence[FolderItem], out_dir: Path) -> None:
    """Outputs never go into, or over, an input or ground-truth folder (whatever
    ``overwrite`` says): refuse an output folder that is one of them or holds one. Real paths
    are compared, so a symlink or a relative path cannot hide the overlap."""
    read = _folders_read(items)
    for folder in (out_dir, out_dir / "masks", out_dir / "soft"):
        real = folder.resolve()
        for source in sorted(read):
            if real == source or real in source.parents:
                raise InputError(
                    f"the output folder must differ from the folders read and lie outside "
                    f"them: {folder} is or holds {source}; choose another output folder"
                )


def refuse_existing(items: Sequence[FolderItem], out_dir: Path) -> None:
    """Refuse outputs that are already there (called unless overwriting or resuming)."""
    outputs = [p for item in items for p in output_paths(out_dir, item.name)]
    outputs.append(out_dir / RESULTS_CSV)
    if items[0].mask is not None:
        outputs.append(out_dir / SUMMARY_JSON)
    existing = [p for p in outputs if p.exists()]
    if existing:
        raise OutputExistsError(
            f"{len(existing)} output file(s) already exist in {out_dir} (first: "
            f"{existing[0].relative_to(out_dir)}); choose another folder, allow overwriting, "
            "or resume an interrupted run"
        )


def finished_row(
    item: FolderItem, out_dir: Path, model: ModelRecord, threshold: float
) -> dict | None:
    """The CSV row of an image an interrupted run finished, or None to segment it again: its
    mask and soft mask are both written (the soft mask first) and the mask's record names
    this input file as it is now. A mask made by another model or at another threshold ends
    the resume (:func:`~wavegms.inference.folder_records.check_same_run`)."""
    mask_path, soft_path = output_paths(out_dir, item.name)
    if not (mask_path.is_file() and soft_path.is_file()):
        return None
    found = read_png_record(mask_path)
    if found is None:
        return None  # no record (an older version's mask, or damaged): made again
    check_same_run(found, model, threshold, out_dir)
    try:
        if found["input_sha256"] != digest(item.image):
            return None  # the input file was replaced since: its mask is made again
        mask, soft = read_image(mask_path), read_image(soft_path)
    except (WaveGMSError, OSError, ValueError):
        return None  # unreadable: made again (reading the input says what is wrong)
    if mask.ndim != 2 or soft.shape != mask.shape:
        return None  # not a mask this pipeline wrote: made again
    area = int(np.count_nonzero(mask))
    return {
        "name": item.name, "file": item.image.name,
        "height": int(mask.shape[0]), "width": int(mask.shape[1]), "mask_area": area,
        **spacing_cells(item.spacing, area),
        "uncertainty": uncertainty(soft),  # from the soft PNG: the number the run wrote
        **found,
    }  # fmt: skip


def printable(text: str) -> str:
    """``text`` with the bytes of file names that are no valid UTF-8 (held as surrogates, as
    :func:`os.fsdecode` gives them) written as ``\\xNN``: printable and writable as UTF-8."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file name gives: escaped as \udNNN
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6f}"
    return printable(str(value))


def csv_text(rows: list[dict], scores: dict[str, tuple[float, float]], scored: bool) -> str:
    columns = [*IMAGE_COLUMNS, *(SCORE_KEYS if scored else ())]
    buf = _stdio.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _csv_cell(row.get(k)) for k in columns} for row in rows)
    for label, index in (("mean", 0), ("std", 1)) if scores else ():
        writer.writerow({"name": label, **{k: _csv_cell(scores[k][index]) for k in SUMMARY_KEYS}})
    return buf.getvalue()
