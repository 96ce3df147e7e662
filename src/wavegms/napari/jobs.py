"""The work behind the Segment widget and the batch dialog, run in worker threads.

Qt-free and torch-free at import time: each job imports the model code when it runs. Jobs
take a ``progress`` callback receiving :class:`wavegms.core.progress.Progress` reports and a
:class:`wavegms.core.progress.CancelToken`, and return a small result object.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wavegms.core.checks import check_threshold
from wavegms.core.errors import Cancelled, InputError, WaveGMSError
from wavegms.core.lifetime import Closable
from wavegms.core.progress import CancelToken, ProgressCallback, report
from wavegms.inference.folder_outputs import (
    FolderReport as BatchResult,  # torch-free: the one report
)


def error_text(err: BaseException) -> str:
    """What the user reads: our own errors as they are, anything else with its type."""
    if isinstance(err, (WaveGMSError, FileExistsError, FileNotFoundError, PermissionError)):
        return str(err)
    return f"unexpected error ({type(err).__name__}): {err}"


@dataclass
class LoadedModel:
    """A ``Segmenter`` and what it was loaded from, so that widgets reload only on change."""

    segmenter: object
    path: Path
    device: str
    precision: str = "fp32"


def load_segmenter(
    current: LoadedModel | None,
    model: str,
    device: str,
    progress: ProgressCallback | None,
    precision: str = "fp32",
) -> LoadedModel:
    """``current`` if it was loaded from this model and device with this ``precision``
    (exact ``fp32``, or ``int8`` when the user chose it), else a newly loaded one."""
    from wavegms.inference.segmenter import Segmenter
    from wavegms.store.catalogue import resolve_model

    if not model:
        raise InputError("no model chosen (none installed yet? fine-tune or train one first)")
    from wavegms.core.devices import resolve_device

    path = resolve_model(model)
    target = str(resolve_device(device))  # "auto" and "cpu" are one model on a CPU machine
    if current is not None and (current.path, current.device, current.precision) == (
        path, target, precision,
    ):  # fmt: skip
        return current
    report(progress, "load", 0, 1, f"loading model {model}")
    segmenter = Segmenter.load(path, target, precision=precision)
    loaded = LoadedModel(segmenter, path, target, precision)
    report(progress, "load", 1, 1, f"model {model} on {loaded.segmenter.device}")
    return loaded


class ModelSlot(Closable):
    """The model a widget keeps loaded between runs, shared by its warm-up thread and its
    jobs: one of them uses it at a time, and it is reloaded only when the model or the device
    changes (or the precision the user chose). The slot owns its segmenter (and so its
    graph's runtime session): a replaced one is closed, and :meth:`close` (its dock
    closed) frees the one it holds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.loaded: LoadedModel | None = None
        self.closed = False

    @contextmanager
    def hold(
        self,
        model: str,
        device: str,
        progress: ProgressCallback | None = None,
        precision: str = "fp32",
    ) -> Iterator:
        """The ``Segmenter`` for ``model`` on ``device`` in ``precision``, held until the block
        ends."""
        with self._lock:
            if self.closed:
                raise Cancelled("the dock was closed")
            loaded = load_segmenter(self.loaded, model, device, progress, precision)
            if self.loaded is not None and loaded is not self.loaded:
                self.loaded.segmenter.close()  # the model it replaces: its session goes too
            self.loaded = loaded
            try:
                yield loaded.segmenter
            finally:
                if self.closed:  # closed while in use: freed now that the job is done
                    self._free()

    def close(self) -> None:
        """Free the loaded model: at once when no job holds it, else when that job ends (the
        GUI thread never waits for a job here)."""
        self.closed = True
        if self._lock.acquire(blocking=False):
            try:
                self._free()
            finally:
                self._lock.release()

    def _free(self) -> None:
        loaded, self.loaded = self.loaded, None
        if loaded is not None:
            loaded.segmenter.close()

    def warm_up(self, model: str, device: str, precision: str = "fp32") -> None:
        """Load the model, start building its fast graph in the background, and run the
        exact eager model once on a blank image, so that the first Segment click does not pay
        for importing torch, reading files and setting up the CPU kernels (together seconds),
        nor wait for the graph (export and compile: a minute on a busy machine). Failures are
        left for that click to report."""
        try:
            with self.hold(model, device, precision=precision) as segmenter:
                segmenter.prepare_graph()
                # Not the model size: the resizing code and its imports are warmed up too.
                size = segmenter.image_size + 8
                segmenter.segment(np.zeros((size, size), np.uint8))
        except Exception:
            pass


def array_digest(data: np.ndarray) -> str:
    """A short fingerprint of an array's bytes (to tell whether a mask was edited)."""
    return hashlib.blake2b(np.ascontiguousarray(data).view(np.uint8), digest_size=16).hexdigest()


@dataclass
class SegmentResult:
    labels: np.ndarray  # uint8, 0/1: ready for a Labels layer
    soft: np.ndarray
    digest: str  # of ``labels``
    mask_edited: bool  # whether the mask layer the result would replace differs from ours
    area: int = 0  # foreground pixels (counted here, not on the GUI thread)
    #: What made the mask (``Segmenter.provenance``: model, its sha256, backend, precision).
    provenance: dict[str, str] = field(default_factory=dict)
    while_building: bool = False  # the exact eager model ran while the graph was built


def segment_job(
    data,
    rgb: bool,
    model: str,
    device: str,
    threshold: float,
    slot: ModelSlot,
    mask_data=None,
    mask_digest: str = "",
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    precision: str = "fp32",
) -> SegmentResult:
    """Segment one layer's data (2D, RGB(A), or a stack, plane by plane).

    Everything that reads or scans whole arrays happens here, in the worker: reading ``data``
    (lazy arrays load now), converting the result, and comparing the mask layer that the result
    would replace (``mask_data``) with what the widget last wrote there (``mask_digest``).
    ``precision``: exact ``fp32`` (default) or ``int8``, the user's explicit choice; the
    result's ``provenance`` says which precision and backend made the mask.
    """
    check_threshold(threshold)
    # Said at once: the first click may wait for the model to load (the warm-up holds the
    # slot meanwhile), which takes seconds.
    report(progress, "load", 0, 1, f"loading the model {model}…")
    with slot.hold(model, device, progress, precision) as segmenter:
        building = segmenter.prepare_graph()  # not waited for: eager gives the same masks
        if building:
            report(progress, "graph", 0, 1, GRAPH_WORDS)  # said while the image is segmented
        else:
            report(progress, "segment", 0, 1, "segmenting…")
        binary, soft = segmenter.segment(
            np.asarray(data), rgb=rgb, progress=progress, cancel=cancel, threshold=threshold
        )
        made_by = segmenter.provenance()  # what ran: not waiting for a graph being built
    labels = binary.astype(np.uint8)
    edited = mask_data is not None and array_digest(np.asarray(mask_data)) != mask_digest
    area = int(np.count_nonzero(labels))
    while_building = building and made_by["backend"] == "eager"
    return SegmentResult(labels, soft, array_digest(labels), edited, area, made_by, while_building)


GRAPH_WORDS = (
    "preparing the fast graph in the background; segmenting with the exact model meanwhile "
    "(the same mask)"
)


def batch_job(
    in_dir: str,
    out_dir: str,
    model: str,
    device: str,
    threshold: float,
    slot: ModelSlot,
    gt_dir: str = "",
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> BatchResult:
    """Segment a folder through the one folder pipeline (``wavegms.inference.folder``:
    ``OUT/masks``, ``OUT/soft``, ``OUT/results.csv``); with ground truth (masks matched by file
    stem) each image is scored too (score columns in the CSV, ``OUT/summary.json``).
    Unreadable files are skipped and listed in the report."""
    from wavegms.data.pairs import find_pairs
    from wavegms.inference.folder import run_folder
    from wavegms.inference.folder_items import folder_items, pair_items

    if not in_dir or not Path(in_dir).is_dir():
        raise InputError(f"input folder {in_dir!r} does not exist or is not a folder")
    if not out_dir:
        raise InputError("choose an output folder")
    if gt_dir and not Path(gt_dir).is_dir():
        raise InputError(f"ground-truth folder {gt_dir!r} does not exist or is not a folder")
    items = pair_items(find_pairs(in_dir, gt_dir)) if gt_dir else folder_items(in_dir)
    with slot.hold(model, device, progress) as segmenter:
        return run_folder(
            segmenter, items, out_dir, threshold=threshold, batch_size=segmenter.batch_size,
            overwrite=overwrite, progress=progress, cancel=cancel,
        )  # fmt: skip
