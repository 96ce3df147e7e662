"""The correction loop without a GUI: review an output folder image by image, most uncertain
first; accept a (corrected) mask into a training set, skip, fine-tune on the accepted pairs,
adopt the new model only when it is better, and segment the images not yet reviewed again.

The session's state is ``OUT/review.json`` (images folder, ground truth, model, training-set
project, accepted, skipped and edited names, the fine-tuned model awaiting a decision),
written atomically after each step, so a review can be left and taken up again, from napari
(the "Review results" dock), Python or the command line (``wavegms rank OUT`` prints
:func:`review_order`).

What it promises: Accept is idempotent and atomic (the training set's ``put`` under its
lock; the same mask again changes nothing); a replaced mask is kept and can be restored
(``inference.mask_versions``); ``results.csv`` says what the masks on disk are
(``inference.review_table``); a fine-tuned model is scored against the current one on
accepted pairs it did not train on and adopted only when better (``inference.adoption``);
its name is reserved while it trains (``store.reservations``).
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wavegms.core.errors import InputError, WaveGMSError
from wavegms.core.files import PathLike, read_json, write_json, write_png
from wavegms.core.progress import CancelToken, ProgressCallback
from wavegms.data.images import read_image
from wavegms.data.masks import read_mask
from wavegms.inference.folder_items import FolderItem, folder_items, pair_items
from wavegms.inference.folder_outputs import FolderReport, output_paths
from wavegms.inference.mask_versions import MaskVersions
from wavegms.inference.review_adoption import AdoptionSteps
from wavegms.inference.review_table import (
    mask_row,
    read_results,
    read_summary,
    review_order,
    write_rows,
)
from wavegms.training.training_set import Entry, TrainingSet

__all__ = ["REVIEW_JSON", "ReviewSession", "ReviewState", "read_results", "review_order"]

REVIEW_JSON = "review.json"


@dataclass
class ReviewState:
    """What ``review.json`` holds."""

    images_dir: str
    model: str  # the model that made the masks not yet reviewed
    project: str = "review"  # the training set accepted pairs go to
    gt_dir: str = ""  # ground truth, when the folder was scored
    threshold: float = 0.5
    accepted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)  # adopted during the review, in order
    edited: list[str] = field(default_factory=list)  # painted, not accepted: never replaced
    candidate: str = ""  # a fine-tuned model awaiting the decision (its run folder's name)
    candidate_run: str = ""


class ReviewSession(AdoptionSteps):
    """One review of one output folder (see the module docstring)."""

    def __init__(self, out_dir: PathLike, state: ReviewState) -> None:
        self.out_dir = Path(out_dir)
        self.state = state
        self.versions = MaskVersions(self.out_dir)
        self._items: dict[str, FolderItem] | None = None
        self._lock = threading.RLock()  # one step at a time (the dock runs them in threads)

    @classmethod
    def open(
        cls,
        out_dir: PathLike,
        images_dir: PathLike | None = None,
        model: str | None = None,
        project: str = "review",
        gt_dir: PathLike | None = None,
        threshold: float = 0.5,
    ) -> ReviewSession:
        """Take up the review of ``out_dir``, or start one (then ``images_dir`` and ``model``,
        the folder and model the outputs came from, are needed)."""
        out_dir = Path(out_dir)
        if not read_results(out_dir):  # refuse a folder without a table now
            raise InputError(f"the table of {out_dir} lists no image: nothing to review")
        path = out_dir / REVIEW_JSON
        if path.is_file():
            try:
                state = ReviewState(**read_json(path))
            except (TypeError, WaveGMSError) as err:
                raise InputError(f"the review state {path} is damaged: {err}") from err
        else:
            if not images_dir or not model:
                raise InputError(
                    f"{out_dir} has no review yet: give the images folder and the model its "
                    "masks came from"
                )
            for folder in (images_dir, gt_dir):
                if folder and not Path(folder).is_dir():
                    raise InputError(f"{folder} does not exist or is not a folder")
            from wavegms.store.catalogue import resolve_model

            resolve_model(str(model))  # an unknown model is refused now, not at fine-tuning
            state = ReviewState(str(images_dir), str(model), project, str(gt_dir or ""), threshold)
        TrainingSet(state.project)  # refuse a bad project name before any work
        session = cls(out_dir, state)
        session.save()
        return session

    def save(self) -> None:
        write_json(self.out_dir / REVIEW_JSON, dataclasses.asdict(self.state))

    # -- what is left --------------------------------------------------------------------
    @property
    def reviewed(self) -> set[str]:
        return {*self.state.accepted, *self.state.skipped}

    def rows(self) -> list[dict]:
        return read_results(self.out_dir)

    def pending(self, rows: list[dict] | None = None) -> list[str]:
        """The names not yet accepted or skipped, most uncertain first."""
        done = self.reviewed
        return [n for n in review_order(rows or self.rows()) if n not in done]

    def next(self) -> str | None:
        pending = self.pending()
        return pending[0] if pending else None

    def items(self) -> dict[str, FolderItem]:
        """The images of the reviewed folder by output name (with their ground truth)."""
        if self._items is None:
            from wavegms.data.pairs import find_pairs

            images, gt = Path(self.state.images_dir), self.state.gt_dir
            found = pair_items(find_pairs(images, gt)) if gt else folder_items(images)
            self._items = {item.name: item for item in found if item.unread is None}
        return self._items

    def item(self, name: str) -> FolderItem:
        try:
            return self.items()[name]
        except KeyError:
            raise InputError(f"{name!r} is not an image of {self.state.images_dir}") from None

    def image(self, name: str) -> np.ndarray:
        item = self.item(name)
        return read_image(item.image, page=item.page)

    def mask(self, name: str) -> np.ndarray:
        """The mask of ``name`` in the output folder (as corrected, once accepted)."""
        return read_mask(output_paths(self.out_dir, name)[0])

    # -- the user's steps ----------------------------------------------------------------
    def accept(self, name: str, mask: np.ndarray | None = None) -> Entry:
        """Put the image and its mask (``mask``: the corrected one; default: the output
        folder's) into the training set and the output folder. Idempotent: the same mask
        again changes nothing; another one replaces the pair's mask (the old output mask is
        kept, see :meth:`restore`)."""
        with self._lock:
            image = self.image(name)
            mask = self.mask(name) if mask is None else np.asarray(mask) > 0
            entry = TrainingSet(self.state.project).put(name, image, mask)
            self._replace_output(name, mask, "accept")
            self._mark(name, self.state.accepted)
            return entry

    def _replace_output(self, name: str, mask: np.ndarray, reason: str) -> None:
        """``OUT/masks/<name>.png`` and its table row become ``mask``'s (the old kept)."""
        path = output_paths(self.out_dir, name)[0]
        if path.is_file() and np.array_equal(read_mask(path), mask):
            return
        rows = {row["name"]: row for row in self.rows()}
        self.versions.keep([name], reason, {name: rows[name]} if name in rows else {})
        write_png(path, mask, overwrite=True)
        if name in rows:
            truth = self.item(name).mask
            size = int(read_summary(self.out_dir).get("model_size", 0))
            new = mask_row(rows[name], mask, read_mask(truth) if truth else None, size)
            write_rows(self.out_dir, {name: new}, self.state.threshold)

    def skip(self, name: str) -> None:
        self.item(name)
        with self._lock:
            self._mark(name, self.state.skipped)

    def mark_edited(self, name: str) -> None:
        """The user painted ``name``'s mask without accepting it: never segment it again."""
        with self._lock:
            if name not in self.state.edited:
                self.state.edited.append(name)
                self.save()

    def _mark(self, name: str, bucket: list[str]) -> None:
        if name in bucket:
            return  # idempotent: nothing to write
        for other in (self.state.accepted, self.state.skipped):
            if name in other:
                other.remove(name)
        bucket.append(name)
        self.save()

    def restore(self, name: str) -> None:
        """Bring back the mask ``name`` had before its last replace, and its row."""
        with self._lock:
            current = {row["name"]: row for row in self.rows()}.get(name)
            row = self.versions.restore(name, current)
            if row is not None:
                write_rows(self.out_dir, {name: row}, self.state.threshold)

    def undo_last_replace(self) -> list[str]:
        """Bring back the masks the last segmenting-again replaced; returns their names."""
        with self._lock:
            names, rows = self.versions.undo_last({r["name"]: r for r in self.rows()})
            write_rows(self.out_dir, rows, self.state.threshold)
            return names

    def resegment(
        self,
        device: str = "auto",
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        segmenter=None,
    ) -> FolderReport | None:
        """Segment the images not yet reviewed nor edited again with the current model; the
        masks replaced are kept (:meth:`undo_last_replace`). None when nothing is left."""
        from wavegms.inference.folder import run_folder

        rows = {row["name"]: row for row in self.rows()}
        left = set(self.pending(list(rows.values()))) - set(self.state.edited)
        items = [item for name, item in self.items().items() if name in left]
        if not items:
            return None
        if segmenter is None:
            from wavegms.inference.segmenter import Segmenter

            segmenter = Segmenter.load(self.state.model, device=device)
        names = [item.name for item in items]
        self.versions.keep(names, f"resegment with {self.state.model}", rows, batch=True)
        report = run_folder(
            segmenter, items, self.out_dir, threshold=self.state.threshold,
            batch_size=segmenter.batch_size, overwrite=True, progress=progress, cancel=cancel,
        )  # fmt: skip
        self._merge_table(rows, report)
        return report

    def _merge_table(self, before: dict[str, dict], report: FolderReport) -> None:
        """The run wrote a table of the images it segmented; put the other rows back."""
        from wavegms.core.files import write_text
        from wavegms.inference.folder_outputs import RESULTS_CSV, csv_text

        write_text(self.out_dir / RESULTS_CSV, csv_text(list(before.values()), {}, report.scored))
        write_rows(self.out_dir, {row["name"]: row for row in report.rows}, report.threshold)
