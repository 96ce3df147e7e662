"""The per-image steps of a folder run, shared by the local run and each dask worker: decode
(read ahead), segment in batches, then resize, write and score (write behind).

With ``overlap`` the next images are decoded and the finished ones resized, scored and written
in threads beside the model (PNG/JPEG codecs, numpy and torch release the GIL); without it the
very same steps run one after another, which is the benchmark's baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np

from wavegms.core.errors import (
    NONFINITE_SOFT,
    ImageReadError,
    InputError,
    NoSignalError,
    WaveGMSError,
)
from wavegms.core.files import write_png
from wavegms.core.progress import CancelToken, ProgressCallback, report
from wavegms.data.images import read_image
from wavegms.data.intensities import no_signal
from wavegms.data.masks import read_mask
from wavegms.data.preprocess import model_input, soft_to_shape
from wavegms.inference.folder_items import FolderItem
from wavegms.inference.folder_outputs import FolderReport, output_paths, spacing_cells
from wavegms.inference.folder_records import backend_of, digest, png_text, record
from wavegms.scoring.scores import score_image
from wavegms.scoring.uncertainty import uncertainty

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


class Decoded(NamedTuple):
    """An image as the queue holds it: only its model input, whatever the file's size."""

    model_input: np.ndarray | None  # None when the image has no signal
    shape: tuple[int, int]  # the image's height and width
    truth: np.ndarray | None  # the boolean ground truth at the image's size, if scored
    input_sha256: str  # of the image file as read
    no_signal: str | None = None  # why the image holds nothing to segment


def decode(item: FolderItem, size: int) -> Decoded:
    """Read one item: its model input, its ground truth, its file's digest, or why it holds
    no picture (then it is listed, not segmented)."""
    if item.unread:
        raise ImageReadError(item.unread)
    raw = read_image(item.image, page=item.page)
    shape = (int(raw.shape[0]), int(raw.shape[1]))
    truth = None
    if item.mask is not None:
        truth = read_mask(item.mask)
        if truth.shape != shape:
            raise InputError(f"{item.name}: image {shape} and mask {truth.shape} differ in size")
    why = no_signal(raw)
    if why:
        return Decoded(None, shape, truth, digest(item.image), why)
    return Decoded(model_input(raw, size), shape, truth, digest(item.image))


def no_signal_row(item: FolderItem, image: Decoded) -> dict:
    """The results.csv row of an image that was not segmented, saying why."""
    return {"name": item.name, "file": item.image.name, "height": image.shape[0],
            "width": image.shape[1], "input_sha256": image.input_sha256,
            "note": f"{image.no_signal}; not segmented"}  # fmt: skip


def finish(item: FolderItem, small: np.ndarray, image: Decoded, made: dict, run: FolderReport,
           overwrite: bool) -> dict:  # fmt: skip
    """Resize one soft mask back to its image, write both masks (the binary one last, with
    ``made``: what made it), score; return its CSV row."""
    soft = soft_to_shape(small, image.shape)
    binary = soft > run.threshold
    mask_path, soft_path = output_paths(run.out_dir, item.name)
    row = {"name": item.name, "file": item.image.name, "height": image.shape[0],
           "width": image.shape[1], "mask_area": int(np.count_nonzero(binary)),
           "uncertainty": uncertainty(soft),  # the review order (wavegms.scoring.uncertainty)
           **made}  # fmt: skip
    row.update(spacing_cells(item.spacing, row["mask_area"]))
    # Existing outputs were refused before the run; one appearing since is kept all the same.
    write_png(soft_path, soft, overwrite=overwrite)
    write_png(mask_path, binary, overwrite=overwrite, text=png_text(row))
    if image.truth is not None:
        row.update(score_image(small, binary, image.truth, run.threshold))
    return row


class InOrder:
    """An executor that runs each task at once in the caller's thread: the pipeline with the
    same steps as with threads, only without overlap."""

    def submit(self, fn: Callable, *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as err:
            future.set_exception(err)
        return future

    def __enter__(self) -> InOrder:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def decoded_ahead(items: list[FolderItem], pool, size: int) -> Iterator[tuple[FolderItem, Future]]:
    """(item, future of its :class:`Decoded`) in order, decoding up to PREFETCH ahead."""
    pending: list[tuple[FolderItem, Future]] = []
    for item in items:
        pending.append((item, pool.submit(decode, item, size)))
        if len(pending) > PREFETCH:
            yield pending.pop(0)
    yield from pending


class _Batches:
    """One segment step's state: the batch being filled, the writes in flight."""

    def __init__(self, predictor: SoftPredictor, run: FolderReport, settings: SegmentSettings,
                 pool) -> None:  # fmt: skip
        self.predictor, self.run, self.settings, self.pool = predictor, run, settings, pool
        self.size = int(predictor.image_size)
        self.batch: list[tuple[FolderItem, Decoded]] = []
        self.finishing: list[tuple[FolderItem, Future]] = []

    @property
    def done(self) -> int:
        return len(self.run.skipped) + len(self.finishing)

    def add(self, item: FolderItem, image: Decoded) -> None:
        if image.no_signal:
            if not self.settings.skip_unreadable:  # a benchmark must not score fewer images
                raise NoSignalError(f"{item.image.name}: {image.no_signal}")
            self.run.flagged.append(no_signal_row(item, image))
            self.run.skipped.append((item.image.name, f"{image.no_signal}; not segmented"))
            return
        self.batch.append((item, image))
        if len(self.batch) == self.settings.batch_size:
            self.flush()

    def flush(self) -> None:
        """Segment the batch and hand each soft mask to a writer."""
        batch, self.batch = self.batch, []
        if not batch:
            return
        inputs = [image.model_input for _, image in batch]
        softs = np.asarray(self.predictor.predict_soft(inputs), np.float32)
        if softs.shape != (len(batch), self.size, self.size):
            raise InputError(
                f"the model returned shape {softs.shape}, expected "
                f"{(len(batch), self.size, self.size)}"
            )
        np.clip(softs, 0.0, 1.0, out=softs)  # a model may stray a rounding error outside [0, 1]
        backend, run = backend_of(self.predictor), self.run
        for (item, image), small in zip(batch, softs, strict=True):
            if not np.isfinite(small).all():  # thresholded, NaN would be an empty mask
                run.skipped.append((item.image.name, NONFINITE_SOFT))
                continue
            made = record(run.model, backend, run.threshold, image.input_sha256)
            job = (finish, item, small, image, made, run, self.settings.overwrite)
            self.finishing.append((item, self.pool.submit(*job)))

    def collect(self) -> None:
        """Wait for the writers; each image's row, or why its mask could not be written."""
        for item, future in self.finishing:
            try:
                self.run.rows.append(future.result())
                self.run.masks.append(output_paths(self.run.out_dir, item.name)[0])
            except (WaveGMSError, OSError) as err:
                self.run.skipped.append((item.image.name, f"could not write its mask: {err}"))


def segment_items(
    predictor: SoftPredictor, items: list[FolderItem], run: FolderReport, settings: SegmentSettings
) -> FolderReport:
    """Segment ``items`` into ``run.out_dir`` (request checked, ``masks/`` and ``soft/``
    made), adding their rows, masks and skips to ``run``; no table. The step every folder
    run shares: ``run_folder`` runs it over all images, a distributed run
    (:mod:`wavegms.inference.folder_dask`) over each worker's share."""
    progress, cancel = settings.progress, settings.cancel
    stage = "evaluate" if run.scored else "segment"
    threads = ThreadPoolExecutor(2, thread_name_prefix="wavegms-io") if settings.overlap else None
    with threads or InOrder() as pool:
        batches = _Batches(predictor, run, settings, pool)
        report(progress, stage, 0, len(items))
        for item, decoding in decoded_ahead(items, pool, batches.size):
            if cancel is not None and cancel.cancelled:
                run.cancelled = True
                break
            try:
                image = decoding.result()
            except (WaveGMSError, OSError, ValueError) as err:
                if not settings.skip_unreadable:
                    raise
                run.skipped.append((item.image.name, str(err)))
            else:
                batches.add(item, image)
            report(progress, stage, batches.done, len(items), item.name)
        if not run.cancelled:
            batches.flush()
            report(progress, stage, batches.done, len(items))
        batches.collect()
    return run


#: run_folder's segment step: (predictor, items left to do, the run's report, settings)
SegmentStep = Callable[[SoftPredictor, list[FolderItem], FolderReport, SegmentSettings], Any]
