"""The table of a reviewed output folder (``OUT/results.csv`` and ``summary.json``): reading
it, the review order, and writing it back with some rows changed (images segmented again,
masks accepted or restored), so that the table always says what the masks on disk are.

Qt-free and torch-free.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from wavegms.core.errors import InputError, WaveGMSError
from wavegms.core.files import PathLike, read_json, write_json, write_text
from wavegms.core.lock import folder_lock
from wavegms.data.preprocess import mask_to_model_size
from wavegms.inference.folder_outputs import RESULTS_CSV, SUMMARY_JSON, csv_text, spacing_cells
from wavegms.scoring.scores import SCORE_KEYS, score_image, summarise_scores, summary_record

COUNTS = ("height", "width", "mask_area")
NUMBERS = (*COUNTS, "uncertainty", *SCORE_KEYS)


def read_results(out_dir: PathLike) -> list[dict]:
    """The per-image rows of ``OUT/results.csv`` (not its mean/std rows), numbers as numbers."""
    path = Path(out_dir) / RESULTS_CSV
    if not path.is_file():
        raise InputError(f"{out_dir} holds no {RESULTS_CSV}: segment a folder into it first")
    with path.open(newline="", encoding="utf-8") as f:
        # mean/std have no file; an image without signal has a note and no mask to review
        rows = [row for row in csv.DictReader(f) if row.get("file") and not row.get("note")]
    if rows and "uncertainty" not in rows[0]:
        raise InputError(f"{path} has no uncertainty column: segment the folder again")
    for line, row in enumerate(rows, 2):
        try:
            for key in NUMBERS:
                if key in row:
                    row[key] = int(row[key]) if key in COUNTS else float(row[key])
        except (TypeError, ValueError):
            raise InputError(f"{path}, line {line}: {key} is no number: {row[key]!r}") from None
        for key in ("row_spacing_mm", "col_spacing_mm", "mask_area_mm2"):
            row[key] = float(row[key]) if row.get(key) else None
    return rows


def review_order(rows: list[dict]) -> list[str]:
    """Names, most uncertain first (ties by name, so the order is reproducible)."""
    return [r["name"] for r in sorted(rows, key=lambda r: (-float(r["uncertainty"]), r["name"]))]


def read_summary(out_dir: Path) -> dict:
    path = out_dir / SUMMARY_JSON
    try:
        return read_json(path) if path.is_file() else {}
    except WaveGMSError:
        return {}


def write_rows(out_dir: Path, changed: dict[str, dict], threshold: float) -> list[dict]:
    """Put the ``changed`` rows (by name) into the table, every other row kept in its place;
    the mean/std rows and ``summary.json`` are computed again. Returns the new rows."""
    with folder_lock(out_dir):
        rows = [changed.get(row["name"], row) for row in read_results(out_dir)]
        scored = bool(rows) and all(k in rows[0] and rows[0][k] != "" for k in SCORE_KEYS)
        scores = summarise_scores(rows) if scored else {}
        if scored:
            old = read_summary(out_dir)
            record = summary_record(
                scores, len(rows), old.get("threshold", threshold), old.get("model_size", 0),
                bool(old.get("complete", True)),
            )  # fmt: skip
            write_json(out_dir / SUMMARY_JSON, record)
        write_text(out_dir / RESULTS_CSV, csv_text(rows, scores, scored))
    return rows


def mask_row(row: dict, mask: np.ndarray, truth: np.ndarray | None, model_size: int) -> dict:
    """``row`` for a mask that replaced the model's (an accepted correction): its area, and
    its scores against ``truth`` when the table is scored (at model size: the mask resized as
    ground truth is)."""
    mask = np.asarray(mask) > 0
    area = int(np.count_nonzero(mask))
    spacing = None
    if row.get("row_spacing_mm"):
        spacing = (float(row["row_spacing_mm"]), float(row["col_spacing_mm"]))
    new = {**row, "mask_area": area, **spacing_cells(spacing, area)}
    if truth is not None and "dsc_native" in row and model_size > 0:
        small = mask_to_model_size(mask, model_size).astype(np.float32)
        new.update(score_image(small, mask, np.asarray(truth) > 0, 0.5))
    return new
