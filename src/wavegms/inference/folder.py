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
  spacing and mask area in mm² when the file gives a spacing); a scored run adds the score
  columns and a mean and a std row;
* ``OUT/summary.json`` (scored runs only): mean/std and the conventions they follow.

With ``overlap`` the next images are decoded and the finished ones resized, scored and written
in threads beside the model (PNG/JPEG codecs, numpy and torch release the GIL); without it the
very same steps run one after another, which is the benchmark's baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from wavegms.core.errors import (
    NONFINITE_SOFT,
    ImageReadError,
    InputError,
    WaveGMSError,
)
from wavegms.core.files import (
    PathLike,
    ensure_folder,
    remove_stale_temporaries,
    write_json,
    write_png,
    write_text,
)
from wavegms.core.lock import folder_lock
from wavegms.core.progress import CancelToken, ProgressCallback, report
from wavegms.data.images import read_image
from wavegms.data.masks import read_mask
from wavegms.data.preprocess import model_input, soft_to_shape
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
    spacing_cells,
)
from wavegms.scoring.scores import (
    score_image,
    summarise_scores,
    summary_record,
)
from wavegms.scoring.uncertainty import uncertainty

if TYPE_CHECKING:
    from wavegms.inference.segmenter import Segmenter

PREFETCH = 4  # images decoded ahead of the model


class SoftPredictor(Protocol):
    """What the pipeline needs from a model (a ``Segmenter``, or a fake in tests)."""

    image_size: int

    def predict_soft(self, images: list[np.ndarray]) -> np.ndarray:
        """float32 ``S x S x 3`` model inputs in [0, 1] -> (B, S, S) soft masks in [0, 1]."""
        ...


@dataclass(frozen=True)
class SegmentSettings:
    """How a folder run's segment step works, the same whichever step runs it
    (:func:`segment_items` here, ``folder_dask.segment_on_cluster`` on a cluster)."""

    batch_size: int
    overwrite: bool  # outputs of the images being segmented may be written over
    skip_unreadable: bool  # list an unreadable image and go on, or stop the run
    overlap: bool = True  # decode and write in threads beside the model
    progress: ProgressCallback | None = None
    cancel: CancelToken | None = None


#: run_folder's segment step: (predictor, items left to do, the run's report, settings)
SegmentStep = Callable[
    [SoftPredictor, list[FolderItem], FolderReport, SegmentSettings], FolderReport
]


# ------------------------------------------------------------------------------ before any work


def _check_request(
    items: Sequence[FolderItem], out_dir: Path, threshold: float, batch_size: int
) -> None:
    """Refuse a run that would fail or harm files, before any work."""
    if not items:
        raise InputError("no images to segment")
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


# ----------------------------------------------------------------------------------- the steps


class Decoded(NamedTuple):
    """An image as the queue holds it: only its model input, whatever the file's size."""

    model_input: np.ndarray
    shape: tuple[int, int]  # the image's height and width
    truth: np.ndarray | None  # the boolean ground truth at the image's size, if scored


def _decode(item: FolderItem, size: int) -> Decoded:
    if item.unread:
        raise ImageReadError(item.unread)
    raw = read_image(item.image, page=item.page)
    shape = (int(raw.shape[0]), int(raw.shape[1]))
    truth = None
    if item.mask is not None:
        truth = read_mask(item.mask)
        if truth.shape != shape:
            raise InputError(f"{item.name}: image {shape} and mask {truth.shape} differ in size")
    return Decoded(model_input(raw, size), shape, truth)


def _finish(
    item: FolderItem,
    small: np.ndarray,
    image: Decoded,
    out_dir: Path,
    threshold: float,
    overwrite: bool,
) -> dict:
    """Resize one soft mask back to its image, write both masks, score; return its CSV row."""
    soft = soft_to_shape(small, image.shape)
    binary = soft > threshold
    mask_path, soft_path = output_paths(out_dir, item.name)
    # Existing outputs were refused before the run; one appearing since is kept all the same.
    write_png(soft_path, soft, overwrite=overwrite)
    write_png(mask_path, binary, overwrite=overwrite)
    row = {
        "name": item.name,
        "file": item.image.name,
        "height": image.shape[0],
        "width": image.shape[1],
        "mask_area": int(np.count_nonzero(binary)),
        "uncertainty": uncertainty(soft),  # the review order (wavegms.scoring.uncertainty)
    }
    row.update(spacing_cells(item.spacing, row["mask_area"]))
    if image.truth is not None:
        row.update(score_image(small, binary, image.truth, threshold))
    return row


class _InOrder:
    """An executor that runs each task at once in the caller's thread: the pipeline with the
    same steps as with threads, only without overlap."""

    def submit(self, fn: Callable, *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as err:
            future.set_exception(err)
        return future

    def __enter__(self) -> _InOrder:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _decoded(items: list[FolderItem], pool, size: int) -> Iterator[tuple[FolderItem, Future]]:
    """(item, future of its :class:`Decoded`) in order, decoding up to PREFETCH ahead."""
    pending: list[tuple[FolderItem, Future]] = []
    for item in items:
        pending.append((item, pool.submit(_decode, item, size)))
        if len(pending) > PREFETCH:
            yield pending.pop(0)
    yield from pending


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
    a resumed run keeps each image whose mask and soft mask are both written, segments the
    rest again and writes the table over all images (unscored runs only).

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
    _check_request(items, out_dir, threshold, batch_size)
    scored = items[0].mask is not None
    if resume and scored:
        raise InputError(
            "only a segmentation without ground truth can be resumed (the scores need every "
            "image again); evaluate again into a new folder, or allow overwriting"
        )
    # A folder that cannot be written is reported now, not after the model has run.
    ensure_folder(out_dir)
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
    kept = {item.name: row for item in items if resume and (row := finished_row(item, out_dir))}
    result = FolderReport(
        out_dir, len(items), threshold, int(predictor.image_size), items[0].mask is not None
    )
    result.kept = len(kept)
    todo = [item for item in items if item.name not in kept]
    segment(predictor, todo, result, settings)
    # The folder is locked to this run and its writers are done: a temporary file left now is
    # a killed writer's (a dask worker that died mid-write), never one of the user's files.
    for folder in (out_dir / "masks", out_dir / "soft"):
        remove_stale_temporaries(folder)
    return write_results(result, items, kept)


def segment_items(
    predictor: SoftPredictor,
    items: list[FolderItem],
    result: FolderReport,
    settings: SegmentSettings,
) -> FolderReport:
    """Segment ``items`` into ``result.out_dir`` (request checked, ``masks/`` and ``soft/``
    made), adding their rows, masks and skips to ``result``; no table. The step every folder
    run shares: :func:`run_folder` runs it over all images, a distributed run
    (:mod:`wavegms.inference.folder_dask`) over each worker's share."""
    out_dir, threshold, scored = result.out_dir, result.threshold, result.scored
    batch_size, overwrite, skip_unreadable = (
        settings.batch_size, settings.overwrite, settings.skip_unreadable
    )  # fmt: skip
    progress, cancel = settings.progress, settings.cancel
    size = int(predictor.image_size)
    stage = "evaluate" if scored else "segment"
    finishing: list[tuple[FolderItem, Future]] = []

    def run_batch(batch: list[tuple[FolderItem, Decoded]]) -> None:
        softs = np.asarray(predictor.predict_soft([d.model_input for _, d in batch]), np.float32)
        if softs.shape != (len(batch), size, size):
            raise InputError(
                f"the model returned shape {softs.shape}, expected {(len(batch), size, size)}"
            )
        np.clip(softs, 0.0, 1.0, out=softs)  # a model may stray a rounding error outside [0, 1]
        for (item, image), small in zip(batch, softs, strict=True):
            if not np.isfinite(small).all():  # thresholded, NaN would be an empty mask
                result.skipped.append((item.image.name, NONFINITE_SOFT))
                continue
            finishing.append(
                (item, pool.submit(_finish, item, small, image, out_dir, threshold, overwrite))
            )

    threads = settings.overlap
    with ThreadPoolExecutor(2, thread_name_prefix="wavegms-io") if threads else _InOrder() as pool:
        batch: list[tuple[FolderItem, Decoded]] = []
        report(progress, stage, 0, len(items))
        for item, decoding in _decoded(items, pool, size):
            if cancel is not None and cancel.cancelled:
                result.cancelled = True
                break
            try:
                batch.append((item, decoding.result()))
            except (WaveGMSError, OSError, ValueError) as err:
                if not skip_unreadable:
                    raise
                result.skipped.append((item.image.name, str(err)))
            if len(batch) == batch_size:
                run_batch(batch)
                batch = []
            done = len(result.skipped) + len(finishing)
            report(progress, stage, done, len(items), item.name)
        if batch and not result.cancelled:
            run_batch(batch)
            report(progress, stage, len(result.skipped) + len(finishing), len(items))
        for item, future in finishing:
            try:
                result.rows.append(future.result())
                result.masks.append(output_paths(out_dir, item.name)[0])
            except (WaveGMSError, OSError) as err:
                result.skipped.append((item.image.name, f"could not write its mask: {err}"))
    return result


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
    write_text(out_dir / RESULTS_CSV, csv_text(result.rows, result.scores, scored))
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
