"""The correction loop without a GUI: review an output folder image by image, most uncertain
first; accept a (corrected) mask into a training set, skip, fine-tune now, and segment the
images not yet reviewed again with the new model.

The session's state is ``OUT/review.json`` (images folder, ground truth, model, training-set
project, accepted and skipped names), written atomically after each step, so a review can be
left and taken up again, from napari (the "Review results" dock), Python or the command line
(``wavegms rank OUT`` prints :func:`review_order`). Accepted pairs go to the fine-tune dock's
training set (:class:`wavegms.training.training_set.TrainingSet`); fine-tuning is the one
fine-tune job (:func:`wavegms.training.finetune.finetune`) and segmenting is the one folder job
(:func:`wavegms.inference.folder.run_folder`).
"""

from __future__ import annotations

import csv
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wavegms.core.errors import InputError, WaveGMSError
from wavegms.core.files import PathLike, read_json, write_json, write_png, write_text
from wavegms.core.lock import folder_lock
from wavegms.core.progress import CancelToken, ProgressCallback
from wavegms.data.images import read_image
from wavegms.data.masks import read_mask
from wavegms.inference.folder_items import FolderItem, folder_items, pair_items
from wavegms.inference.folder_outputs import (
    RESULTS_CSV,
    SUMMARY_JSON,
    FolderReport,
    csv_text,
    output_paths,
)
from wavegms.scoring.scores import SCORE_KEYS, summarise_scores, summary_record
from wavegms.training.finetune import MIN_PAIRS, FinetuneOutcome, FinetuneRequest, finetune
from wavegms.training.training_set import Entry, TrainingSet

REVIEW_JSON = "review.json"
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
    return rows


def review_order(rows: list[dict]) -> list[str]:
    """Names, most uncertain first (ties by name, so the order is reproducible)."""
    return [r["name"] for r in sorted(rows, key=lambda r: (-float(r["uncertainty"]), r["name"]))]


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
    models: list[str] = field(default_factory=list)  # fine-tuned during the review, in order


class ReviewSession:
    """One review of one output folder (see the module docstring)."""

    def __init__(self, out_dir: PathLike, state: ReviewState) -> None:
        self.out_dir = Path(out_dir)
        self.state = state
        self._items: dict[str, FolderItem] | None = None

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

    def pending(self) -> list[str]:
        """The names not yet accepted or skipped, most uncertain first."""
        done = self.reviewed
        return [name for name in review_order(self.rows()) if name not in done]

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
        """Add the image and its mask (``mask``: the corrected one; default: the output
        folder's) to the training set; a corrected mask also replaces the output mask."""
        if name in self.state.accepted:
            raise InputError(f"{name} was accepted already")
        image = self.image(name)
        if mask is None:
            mask = self.mask(name)
        entry = TrainingSet(self.state.project).add(image, mask, name)
        mask_path = output_paths(self.out_dir, name)[0]
        write_png(mask_path, np.asarray(mask) > 0, overwrite=True)  # the dataset of good masks
        self._mark(name, self.state.accepted)
        return entry

    def skip(self, name: str) -> None:
        self.item(name)
        self._mark(name, self.state.skipped)

    def _mark(self, name: str, bucket: list[str]) -> None:
        for other in (self.state.accepted, self.state.skipped):
            if name in other:
                other.remove(name)
        bucket.append(name)
        self.save()

    def finetune_request(self, template: FinetuneRequest | None = None) -> FinetuneRequest:
        """The dock's settings (``template``; default: the library's) on the accepted pairs,
        from the current model, to a new name."""
        pairs = TrainingSet(self.state.project)
        if len(pairs.names()) < MIN_PAIRS:  # the fine-tune's own least, said before it starts
            raise InputError(
                f"accept at least {MIN_PAIRS} images before fine-tuning "
                f"({len(pairs.names())} so far)"
            )
        pairs.tidy()
        base = template or FinetuneRequest(data_dir="", base_model="", new_name="")
        stem = self.state.models[0] if self.state.models else self.state.model
        name = f"{stem.split('-review')[0]}-review{time.strftime('%Y%m%d-%H%M%S')}"
        return dataclasses.replace(
            base, data_dir=str(pairs.root), base_model=self.state.model, new_name=name
        )

    def adopt(self, model: str) -> None:
        """From now on, masks not yet reviewed come from ``model``."""
        self.state.model = model
        self.state.models.append(model)
        self.save()

    def finetune_now(
        self,
        template: FinetuneRequest | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> FinetuneOutcome:
        """Fine-tune on the accepted pairs and adopt the new model (if one was made)."""
        request = self.finetune_request(template)
        outcome = finetune(request, progress, cancel)
        if outcome.installed is not None:
            self.adopt(request.new_name)
        return outcome

    def resegment(
        self,
        device: str = "auto",
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        segmenter=None,
    ) -> FolderReport | None:
        """Segment the images not yet reviewed again with the current model; the reviewed
        rows stay as they are. None when nothing is left."""
        from wavegms.inference.folder import run_folder

        pending = set(self.pending())
        items = [item for name, item in self.items().items() if name in pending]
        if not items:
            return None
        if segmenter is None:
            from wavegms.inference.segmenter import Segmenter

            segmenter = Segmenter.load(self.state.model, device=device)
        before = {row["name"]: row for row in self.rows()}
        report = run_folder(
            segmenter, items, self.out_dir, threshold=self.state.threshold,
            batch_size=segmenter.batch_size, overwrite=True, progress=progress, cancel=cancel,
        )  # fmt: skip
        self._merge_table(before, report)
        return report

    def _merge_table(self, before: dict[str, dict], report: FolderReport) -> None:
        """The run wrote a table of the images it segmented; put the reviewed rows back."""
        fresh = {row["name"]: row for row in report.rows}
        rows = [fresh.get(name, row) for name, row in before.items()]
        scores = summarise_scores(rows) if report.scored else {}
        with folder_lock(self.out_dir):
            if report.scored:
                record = summary_record(
                    scores, len(rows), report.threshold, report.model_size, not report.cancelled
                )
                write_json(self.out_dir / SUMMARY_JSON, record)
            write_text(self.out_dir / RESULTS_CSV, csv_text(rows, scores, report.scored))
