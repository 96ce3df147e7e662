"""The one folder pipeline behind ``wavegms segment``, ``wavegms evaluate``, the napari batch
panel and ``wavegms bench``.

Each image is decoded once, made into the model's input by :mod:`wavegms.data.preprocess`,
segmented in batches, and its soft mask resized back to the image; optionally it is scored
against its ground-truth mask (:mod:`wavegms.scoring.scores`). Outputs:

* ``OUT/masks/<name>.png`` (binary, 0/255) and ``OUT/soft/<name>.png`` (soft, 0-255); a
  multi-page TIFF ``scan.tif`` gives one of each per page, ``scan_page001.png`` and on; a
  DICOM one per frame, ``<SOPInstanceUID>_f0001.png`` and on; a NIfTI volume one per slice,
  ``<stem>_z0000.png`` and on (see :mod:`wavegms.inference.folder_items`);
* ``OUT/results.csv``: one row per image (name, file, height, width, mask_area, and the pixel
  spacing and mask area in mm² when the file gives a spacing; what made the mask: model name
  and sha256, backend, precision, threshold, and the input file's sha256); an image without
  signal (constant, no finite value) gets no mask but a row whose ``note`` says why; a scored
  run adds the score columns and a mean and a std row;
* ``OUT/summary.json`` (scored runs only): mean/std and the conventions they follow.

The per-image steps (decode ahead, segment in batches, write behind) are
:mod:`wavegms.inference.folder_steps`; what each mask records and what ``--resume`` keeps,
:mod:`wavegms.inference.folder_records`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from wavegms.core.errors import InputError
from wavegms.core.files import (
    PathLike,
    ensure_folder,
    remove_stale_temporaries,
    write_json,
    write_text,
)
from wavegms.core.lock import folder_lock
from wavegms.core.progress import CancelToken, ProgressCallback
from wavegms.inference.folder_items import FolderItem, folder_items
from wavegms.inference.folder_outputs import (
    RESULTS_CSV,
    SUMMARY_JSON,
    FolderReport,
    check_apart,
    csv_text,
    finished_row,
    output_paths,
    refuse_existing,
)
from wavegms.inference.folder_records import model_record
from wavegms.inference.folder_steps import (
    SegmentSettings,
    SegmentStep,
    SoftPredictor,
    segment_items,
)
from wavegms.scoring.scores import summarise_scores, summary_record

if TYPE_CHECKING:
    from wavegms.inference.segmenter import Segmenter

__all__ = [
    "FolderReport", "SegmentSettings", "SoftPredictor", "run_folder", "segment_folder",
    "segment_items", "write_results",
]  # fmt: skip


# ------------------------------------------------------------------------------ before any work


def _check_request(
    items: Sequence[FolderItem], out_dir: Path, threshold: float, batch_size: int, resume: bool
) -> None:
    """Refuse a run that would fail or harm files, before any work."""
    if not items:
        raise InputError("no images to segment")
    if resume and items[0].mask is not None:
        raise InputError(
            "only a segmentation without ground truth can be resumed (the scores need every "
            "image again); evaluate again into a new folder, or allow overwriting"
        )
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"threshold must be in [0, 1], got {threshold}")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    if len({item.mask is None for item in items}) > 1:
        raise InputError("either every image has a ground-truth mask or none has")
    seen: dict[str, FolderItem] = {}
    for item in items:
        if not item.name or "/" in item.name or "\\" in item.name or item.name in (".", ".."):
            raise InputError(f"{item.image.name}: {item.name!r} cannot be used as a file name")
        if item.name in seen:
            raise InputError(
                f"{seen[item.name].image.name} and {item.image.name} would write the same mask "
                f"{item.name}.png; rename one of them"
            )
        seen[item.name] = item
    check_apart(items, out_dir)


# ----------------------------------------------------------------------------------- the run


def run_folder(
    predictor: SoftPredictor,
    items: Sequence[FolderItem],
    out_dir: PathLike,
    *,
    threshold: float = 0.5,
    batch_size: int = 8,
    overwrite: bool = False,
    resume: bool = False,
    skip_unreadable: bool = True,
    overlap: bool = True,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    segment: SegmentStep | None = None,
) -> FolderReport:
    """Segment ``items`` into ``out_dir`` (see the module docstring), scoring them when they
    come with ground-truth masks.

    Refused before any work, whatever ``overwrite`` says: an output folder that is, or holds,
    a folder read (images, ground truth, or the ``masks/`` beside an ``images/`` folder), two
    items with one name, and an output folder in use by another run (a lock file in it, see
    :mod:`wavegms.core.lock`). Existing outputs are refused unless ``overwrite`` or ``resume``:
    a resumed run (unscored runs only) keeps each image whose masks are written and record
    this input file, segments the rest and writes the table over all images; masks of
    another model or threshold end it (:mod:`wavegms.inference.folder_records`).

    An image (or mask) that cannot be read is skipped and listed, or ends the run when
    ``skip_unreadable`` is False (a benchmark must not silently score fewer images).
    Cancelling keeps the masks written so far and still writes the table (and
    ``summary.json``, marked incomplete) of them.

    ``segment`` is how the images left to do are segmented: :func:`segment_items` in this
    process (the default), or spread over a cluster by
    :func:`wavegms.inference.folder_dask.run_folder_dask`; checks, lock, resume and table
    stay these.
    """
    items, out_dir = list(items), Path(out_dir)
    _check_request(items, out_dir, threshold, batch_size, resume)
    ensure_folder(out_dir)  # a folder that cannot be written: said now, not after the model
    with folder_lock(out_dir):
        if not (overwrite or resume):
            refuse_existing(items, out_dir)
        for folder in (out_dir / "masks", out_dir / "soft"):
            ensure_folder(folder)
        settings = SegmentSettings(
            batch_size, overwrite or resume, skip_unreadable, overlap, progress, cancel
        )
        return _run(
            predictor, items, out_dir, threshold, resume, settings, segment or segment_items
        )


def _run(
    predictor: SoftPredictor,
    items: list[FolderItem],
    out_dir: Path,
    threshold: float,
    resume: bool,
    settings: SegmentSettings,
    segment: SegmentStep,
) -> FolderReport:
    """:func:`run_folder` once its request is checked and its output folder locked."""
    model = model_record(predictor)
    kept = {}
    for item in items if resume else ():
        if row := finished_row(item, out_dir, model, threshold):
            kept[item.name] = row
    result = FolderReport(
        out_dir,
        len(items),
        threshold,
        int(predictor.image_size),
        items[0].mask is not None,
        model,
    )
    result.kept = len(kept)
    todo = [item for item in items if item.name not in kept]
    segment(predictor, todo, result, settings)
    # The folder is locked to this run and its writers are done: a temporary file left now is
    # a killed writer's (a dask worker that died mid-write), never one of the user's files.
    for folder in (out_dir / "masks", out_dir / "soft"):
        remove_stale_temporaries(folder)
    return write_results(result, items, kept)


def write_results(
    result: FolderReport, items: Sequence[FolderItem], kept: dict[str, dict]
) -> FolderReport:
    """Write the table (and ``summary.json`` if scored) of a run over ``items``: its rows
    with the ``kept`` rows of a resumed run, in input order, whichever order they came in."""
    out_dir, threshold, scored = result.out_dir, result.threshold, result.scored
    size = result.model_size
    order = {item.name: i for i, item in enumerate(items)}
    rows = [*kept.values(), *result.rows]
    result.rows = sorted(rows, key=lambda row: order[row["name"]])
    result.masks = [output_paths(out_dir, row["name"])[0] for row in result.rows]
    if scored and not result.rows and not result.cancelled:
        why = result.skipped[0][1] if result.skipped else "nothing was scored"
        raise InputError(f"none of the {result.total} images could be scored: {why}")
    if scored and result.rows:
        result.scores = summarise_scores(result.rows)
        record = summary_record(
            result.scores, len(result.rows), threshold, size, complete=not result.cancelled
        )
        write_json(out_dir / SUMMARY_JSON, record)
    table = sorted([*result.rows, *result.flagged], key=lambda row: order[row["name"]])
    write_text(out_dir / RESULTS_CSV, csv_text(table, result.scores, scored))
    return result


def segment_folder(
    segmenter: Segmenter,
    in_dir: PathLike,
    out_dir: PathLike,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    overlap: bool = True,
    resume: bool = False,
) -> FolderReport:
    """Every image of ``in_dir`` through :func:`run_folder`, with the segmenter's threshold and
    batch size; unreadable files are skipped and listed."""
    return run_folder(
        segmenter, folder_items(in_dir), out_dir,
        threshold=segmenter.threshold, batch_size=segmenter.batch_size, overwrite=overwrite,
        resume=resume, overlap=overlap, progress=progress, cancel=cancel,
    )  # fmt: skip
