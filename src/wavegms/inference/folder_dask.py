"""Folder segmentation on a dask.distributed cluster: ``wavegms segment IN OUT --workers N``
(a local cluster of N worker processes) or ``--scheduler ADDRESS`` (a running cluster, e.g.
one that dask-jobqueue started on SLURM; see docs/scaling.md).

This is :func:`~wavegms.inference.folder.run_folder` itself with its segment step spread
over the cluster: the checks, the output folder's lock, ``--resume``, the outputs and the
table are the local run's. The images left to do are cut into shares of a few batches; each
share is one dask task that runs :func:`~wavegms.inference.folder.segment_items` (the
local run's per-image steps) on a worker and returns its rows. Each worker loads the model
once, on its first share, into its :class:`~wavegms.inference.worker_models.LoadedModels`
(a worker plugin: the models are closed with the worker); the table is written once, by
the client, when every share is in. A worker that dies has its shares run again elsewhere
by the scheduler (``distributed.scheduler.allowed-failures`` times at most); progress is
reported as shares finish. Input and output folders and the model file must be reachable
from every worker at the same paths (a shared file system).

dask is an optional dependency (``pip install "napari-wavegms[distributed]"``), imported only
when a distributed run starts.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from wavegms.core.errors import InputError, WaveGMSError
from wavegms.core.files import PathLike
from wavegms.core.progress import CancelToken, ProgressCallback, report
from wavegms.inference.cluster_progress import ClusterProgress, worker_progress
from wavegms.inference.dask_cluster import (  # noqa: F401 (the cluster, for callers)
    WorkerModel,
    dask_client,
    import_distributed,
    local_torch_threads,
)
from wavegms.inference.folder import SegmentSettings, run_folder, segment_items
from wavegms.inference.folder_items import FolderItem
from wavegms.inference.folder_outputs import FolderReport
from wavegms.inference.folder_records import model_record

if TYPE_CHECKING:
    from distributed import Client

    from wavegms.inference.segmenter import Segmenter

#: batches per task by default: small enough to spread and to retry, large enough to batch.
#: A share is a whole number of batches, so a worker batches the images as the local run does
#: (a model's output may differ in its last bits with the batch an image is in).
SHARE_BATCHES = 4


def worker_segmenter(model: WorkerModel) -> tuple[Segmenter, threading.Lock]:
    """This worker's segmenter for ``model`` (loaded on its first share) and its lock."""
    from wavegms.inference.worker_models import worker_models

    return worker_models().segmenter(model)


def segment_share(
    model: WorkerModel,
    items: list[FolderItem],
    out_dir: str,
    threshold: float,
    scored: bool,
    skip_unreadable: bool,
    topic: str | None = None,
) -> FolderReport:
    """One dask task: segment a share of the images on this worker; its rows, masks and skips.
    Outputs are written over: the only ones there are this share's own, from a try on a
    worker that died (the client refused existing outputs before the run)."""
    segmenter, lock = worker_segmenter(model)
    share = FolderReport(
        Path(out_dir), len(items), threshold, segmenter.image_size, scored,
        model_record(segmenter),
    )  # fmt: skip
    with lock:
        settings = SegmentSettings(
            segmenter.batch_size, True, skip_unreadable, progress=worker_progress(topic)
        )
        return segment_items(segmenter, items, share, settings)


class ClusterModel:
    """The model as the client's run_folder sees it: its input size and where it runs. It
    never predicts in this process; :func:`segment_on_cluster` sends the images to it."""

    def __init__(self, client: Client, model: WorkerModel, image_size: int, share_size: int):
        self.client, self.model = client, model
        self.image_size, self.share_size = image_size, share_size
        self.model_file = Path(model.path)  # what the masks record (folder_records)

    def predict_soft(self, images: list[np.ndarray]) -> np.ndarray:
        raise RuntimeError("a ClusterModel predicts on the cluster's workers only")


def _merge_shares(result: FolderReport, finished: list[FolderReport | None]) -> FolderReport:
    """Add the shares' reports to ``result`` in input order (None: a share never finished)."""
    for share in finished:
        if share is not None:
            result.rows += share.rows
            result.masks += share.masks
            result.skipped += share.skipped
            result.flagged += share.flagged
    return result


def segment_on_cluster(
    predictor: ClusterModel,
    items: list[FolderItem],
    result: FolderReport,
    settings: SegmentSettings,
) -> FolderReport:
    """run_folder's segment step on the cluster (same signature as ``segment_items``): one
    task per share, gathered as they finish, merged into ``result`` in input order."""
    from distributed import as_completed

    client, n = predictor.client, predictor.share_size
    shares = [items[i : i + n] for i in range(0, len(items), n)]
    run = uuid.uuid4().hex[:8]
    progress, cancel = settings.progress, settings.cancel
    topic = f"wavegms-progress-{run}"  # each finished image, as workers report them
    task = (str(result.out_dir), result.threshold, result.scored, settings.skip_unreadable, topic)
    futures = [
        client.submit(
            segment_share, predictor.model, share, *task, key=f"wavegms-{run}-{i}", pure=False
        )
        for i, share in enumerate(shares)
    ]
    position = {future.key: i for i, future in enumerate(futures)}
    finished: list[FolderReport | None] = [None] * len(futures)
    stage = "evaluate" if result.scored else "segment"
    report(progress, stage, 0, len(items))
    done = 0
    counter = ClusterProgress(client, topic, progress, stage, len(items)).start()
    try:
        for future in as_completed(futures):
            if cancel is not None and cancel.cancelled:
                result.cancelled = True
                break
            share = future.result()  # a worker's error (skip_unreadable=False) ends the run
            finished[position[future.key]] = share
            done += share.total
            counter.show(done, share.rows[-1]["name"] if share.rows else "")
    except Exception as err:
        if type(err).__name__ == "KilledWorker":  # dask's: the share's workers kept dying
            raise WaveGMSError(f"workers died on every try of a share of images: {err}") from err
        raise
    finally:
        counter.stop()
        client.cancel([future for future in futures if not future.done()])
    return _merge_shares(result, finished)


def run_folder_dask(
    model: PathLike,
    items: Sequence[FolderItem],
    out_dir: PathLike,
    client: Client,
    *,
    device: str = "auto",
    threshold: float = 0.5,
    batch_size: int = 8,
    share_size: int | None = None,
    torch_threads: int | None = None,
    backend: str = "auto",
    overwrite: bool = False,
    resume: bool = False,
    skip_unreadable: bool = True,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> FolderReport:
    """:func:`~wavegms.inference.folder.run_folder` over ``client``'s workers: the model
    file ``model`` (name or path) is checked here and loaded once on each worker.
    ``share_size``: images per task (default ``SHARE_BATCHES`` batches)."""
    from wavegms.inference.worker_models import prepare_workers
    from wavegms.store.catalogue import resolve_model
    from wavegms.store.model_files import load_model

    share_size = SHARE_BATCHES * batch_size if share_size is None else share_size
    if share_size < 1:
        raise InputError(f"share_size must be at least 1, got {share_size}")
    path = resolve_model(model).resolve()
    size = load_model(path).config.image_size  # a damaged model is found before any task
    worker_model = WorkerModel(str(path), device, batch_size, torch_threads, backend)
    predictor = ClusterModel(client, worker_model, size, share_size)
    prepare_workers(client)  # each worker keeps the models it loads in it
    return run_folder(
        predictor, items, out_dir, threshold=threshold, batch_size=batch_size,
        overwrite=overwrite, resume=resume, skip_unreadable=skip_unreadable, progress=progress,
        cancel=cancel, segment=segment_on_cluster,
    )  # fmt: skip
