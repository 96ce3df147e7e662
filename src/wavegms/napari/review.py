"""The "Review results" dock: the correction loop over a segmented folder.

A sortable table of the output folder (most uncertain first); a row shows the image and its
mask, ready to paint. Accept puts the pair into the training set; Skip moves on; Fine-tune now
trains (child process) and scores the new model against the current one on held-out pairs (a
k-fold check for 5-9 pairs); the user decides, and only then are the images not yet reviewed
segmented again, each replaced mask kept (Restore, Undo batch). The dock renders
:class:`~wavegms.inference.review_flow.ReviewFlow` and forwards clicks; the work is
:class:`~wavegms.inference.review.ReviewSession`'s, in worker threads (``runner``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import ComboBox, Container, FileEdit, LineEdit, PushButton

from wavegms.core.errors import InputError
from wavegms.inference.review import ReviewSession
from wavegms.inference.review_flow import Event, ReviewFlow, Step
from wavegms.napari import review_jobs as jobs
from wavegms.napari.adoption_panel import AdoptionPanel
from wavegms.napari.feedback import guarded
from wavegms.napari.fields import (
    button_row,
    complete_device_list,
    device_choices,
    model_choices,
)
from wavegms.napari.finetune_job import launch
from wavegms.napari.review_jobs import MASK
from wavegms.napari.review_layers import prepare_layers, show_pair, show_soft
from wavegms.napari.review_table import fill_table, review_table, table_names
from wavegms.napari.runner import JobForm, run_light
from wavegms.napari.settings import BatchSettings, FinetuneSettings, load_settings

if TYPE_CHECKING:
    import napari


BUTTONS = (  # attribute, text, tooltip
    ("open", "Open results", "read the table of a folder run"),
    ("soft", "Soft", "show the soft mask over the image"),
    ("accept", "Accept", "add the image and its (corrected) mask to the training set"),
    ("skip", "Skip", "go on without adding this image"),
    ("restore", "Restore", "bring back this image's mask before its last replace"),
    ("undo", "Undo batch", "bring back every mask the last segmenting-again replaced"),
)


class ReviewWidget(JobForm):
    dock_title = "Review results"
    cancel_message = "stopping…"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__("Fine-tune now", cancel_text="Stop")
        self.viewer = viewer
        self.flow = ReviewFlow()
        self.session: ReviewSession | None = None
        self.current: str | None = None  # the row shown in the layers
        self.request, self.stopped = None, False  # the running fine-tune's; stopped early?
        self._next_job = None  # started once the running job has ended
        batch = load_settings(BatchSettings)  # the last batch run is the likely one to review
        self.out_dir = FileEdit(label="results", mode="d", nullable=True)
        self.images_dir = FileEdit(label="images", mode="d", nullable=True)
        self.gt_dir = FileEdit(label="ground truth", mode="d", nullable=True)
        self.out_dir.value = batch.output_dir or None
        self.images_dir.value = batch.input_dir or None
        self.gt_dir.value = batch.gt_dir or None
        self.model = ComboBox(label="model", choices=model_choices)
        if batch.model in self.model.choices:
            self.model.value = batch.model
        self.device = ComboBox(label="device", choices=device_choices)
        self.project = LineEdit(label="training set", value="review")
        for name, text, tip in BUTTONS:
            setattr(self, f"{name}_button", PushButton(text=text, tooltip=tip))
        self.table = review_table()
        self.adoption = AdoptionPanel(self.adopt, self.decline, self.status)
        # The folders fold away once open: Accept and the table get the dock's height.
        self.setup = Container(widgets=[self.out_dir, self.images_dir, self.gt_dir, self.model,
                                        self.device, self.project])  # fmt: skip
        self.setup.margins = (0, 0, 0, 0)
        self.setup_button, self.folded = PushButton(text="Folders ▾"), False
        self.add_rows(button_row(self.setup_button, self.open_button), self.setup)
        self.add_rows(button_row(self.accept_button, self.skip_button))
        self.add_rows(button_row(self.soft_button, self.restore_button, self.undo_button))
        self.add_job_controls()
        self.add_rows(self.adoption)
        self.content.layout().addWidget(self.table)
        complete_device_list(self.device, "auto")
        for button, slot in (
            (self.open_button, self.open_results), (self.soft_button, self.show_soft),
            (self.accept_button, self.accept), (self.skip_button, self.skip),
            (self.restore_button, self.restore), (self.undo_button, self.undo),
            (self.setup_button, self.fold),
        ):  # fmt: skip
            button.changed.connect(guarded(slot, self.status))
        self.table.itemSelectionChanged.connect(guarded(self._row_chosen, self.status))
        self.finish_layout()

    @property
    def phase(self) -> str:  # the background step running ("" when none)
        return self.flow.running

    def _light(self, function, *args, then) -> None:
        run_light(function, *args, then=guarded(then, self.status), status=self.status)

    def open_results(self, _value=None) -> None:
        folder = lambda w: str(w.value) if w.value not in (None, "", Path(".")) else None  # noqa: E731
        out = folder(self.out_dir)
        if out is None:
            raise InputError("choose the results folder of a batch run")
        self.flow.check("open")
        self.flow.fire(Event.OPEN)
        args = (out, folder(self.images_dir), self.model.value, self.project.value.strip())
        drop_empty = prepare_layers(self.viewer)  # added while the table is read
        opened = guarded(self._opened, self.status)
        failed = lambda: (self.flow.fire(Event.FAILED), drop_empty())  # noqa: E731
        args = (*args, folder(self.gt_dir))
        run_light(jobs.open_job, *args, then=opened, status=self.status, failed=failed)

    def fold(self, _value=None, shown: bool | None = None) -> None:
        """Show or hide the folders (``shown``; None: the other way round)."""
        self.folded = not self.folded if shown is None else not shown
        self.setup.visible = not self.folded
        self.setup_button.text = "Folders ▸" if self.folded else "Folders ▾"

    def _opened(self, result) -> None:
        self.session, table = result
        self.fold(shown=False)
        self.flow.fire(Event.OPENED)
        self.show_table(table)
        if self.session.state.candidate:  # a fine-tune ended while the dock was closed
            self.flow.fire(Event.TRAINED)
            self._compare()

    def show_table(self, table) -> None:
        rows, status, left, following = table
        fill_table(self.table, rows, status)
        self.status.value = (
            f"{left} of {len(rows)} image(s) to review; model {self.session.state.model}"
        )
        self.select(following)

    def names(self) -> list[str]:  # in the table's order
        return table_names(self.table)

    def select(self, name: str | None) -> None:
        if name is None:
            self.status.value = "every image is reviewed"
        elif name in self.names():
            self.table.selectRow(self.names().index(name))

    def _row_chosen(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows and self.session is not None:
            name = self.table.item(rows[0].row(), 0).text()
            self._light(jobs.read_pair, self.session, name, then=self._show_pair)

    def _show_pair(self, result) -> None:
        name, image, mask = result
        labels = show_pair(self.viewer, image, mask)
        labels.events.paint.disconnect(self._painted)  # once, however often it is shown
        labels.events.paint.connect(self._painted)
        self.current = name

    def _painted(self, _event=None) -> None:
        """An edit of the shown mask: that image is never segmented again (until accepted)."""
        if self.session is not None and self.current is not None:
            self._light(self.session.mark_edited, self.current, then=lambda _: None)

    def show_soft(self, _value=None) -> None:
        if self.current is None:
            raise InputError("select an image in the table first")
        self._light(jobs.read_soft, self.session, self.current, then=self._show_soft)

    def _show_soft(self, result) -> None:
        name, soft = result
        if name == self.current:
            show_soft(self.viewer, soft)

    def _shown(self, action: str) -> str:
        if self.session is None or self.current is None or MASK not in self.viewer.layers:
            raise InputError("open a results folder and select an image first")
        self.flow.check(action)
        return self.current

    def accept(self, _value=None) -> None:
        name = self._shown("accept")
        mask = self.viewer.layers[MASK].data  # handed to the worker as it is: no copy here
        self._light(jobs.accept_job, self.session, name, mask, then=self._reviewed)

    def skip(self, _value=None) -> None:
        name = self._shown("skip")
        self._light(jobs.skip_job, self.session, name, then=self._reviewed)

    def _reviewed(self, result) -> None:
        what, table = result
        self.show_table(table)
        self.status.value = f"{what}; " + self.status.value

    def restore(self, _value=None) -> None:
        name = self._shown("restore")
        self._light(jobs.table_job, self.session, "restore", name, then=self._restored)

    def undo(self, _value=None) -> None:
        if self.session is None:
            raise InputError("open a results folder first")
        self.flow.check("undo")
        self._light(jobs.table_job, self.session, "undo", None, then=self._restored)

    def _restored(self, result) -> None:
        self._reviewed(result)
        if self.current is not None:
            self._light(jobs.read_pair, self.session, self.current, then=self._show_pair)

    def start(self) -> None:
        """Fine-tune now: the fine-tune dock's settings on the accepted pairs."""
        if self.session is None:
            raise InputError("open a results folder first")
        self.flow.check("finetune")
        template = load_settings(FinetuneSettings).request
        template = dataclasses.replace(template, device=self.device.value or "auto")
        self.flow.fire(Event.FINETUNE)  # the snapshot is taken in a worker, then it starts
        run_light(jobs.prepare_finetune_job, self.session, template,
                  then=guarded(self._launch, self.status),
                  status=self.status, failed=lambda: self.flow.fire(Event.FAILED))  # fmt: skip

    def _launch(self, prepared) -> None:
        (request, plan), self.stopped = prepared, False
        self.request = request
        text = f"fine-tuning {request.new_name}" + (f" ({plan})" if plan else "")
        self.start_process(launch, text, request, request.epochs, note=plan)

    def on_returned(self, result) -> None:
        step = self.flow.step
        if step is Step.FINETUNING:
            self.session.finished(self.request, result)
            if not self.session.state.candidate:
                self.flow.fire(Event.NO_MODEL)
                self.status.value = "stopped before the first epoch ended: no model was made"
                return
            self.stopped = bool(result["cancelled"])
            self.flow.fire(Event.TRAINED)
            self._next_job = self._compare
        elif step is Step.COMPARING:
            self._decide(result)
        elif step is Step.RESEGMENTING:
            self.flow.fire(Event.RESEGMENTED)
            text, table = result
            self.show_table(table)
            self.status.value = f"{text}; " + self.status.value

    def _compare(self) -> None:
        device = self.device.value or "auto"
        self.start_thread(jobs.compare_job, "comparing the new model with the current one",
                          session=self.session, device=device)  # fmt: skip

    def _decide(self, comparison) -> None:
        from wavegms.inference.adoption import Verdict

        better = comparison.verdict is Verdict.BETTER and not self.stopped
        self.flow.fire(Event.BETTER if better else Event.UNDECIDED)
        stopped = "the fine-tune was stopped early; " if self.stopped else ""
        redo = "; using it segments the images not yet reviewed again (Undo batch restores them)"
        self.adoption.ask(stopped + comparison.text() + redo)
        self.status.value = "choose below whether to use the new model"

    def adopt(self, _value=None) -> None:
        self.flow.check("adopt")
        self.flow.fire(Event.ADOPT)
        self.adoption.close_question()
        self._adopt_and_resegment()

    def _adopt_and_resegment(self) -> None:
        device = self.device.value or "auto"
        self.start_thread(jobs.adopt_and_resegment_job, "segmenting the rest with the new model",
                          session=self.session, device=device)  # fmt: skip

    def decline(self, _value=None) -> None:
        self.flow.check("decline")
        self.flow.fire(Event.DECLINE)
        self.adoption.close_question()
        kept = f"kept {self.session.state.model}; the new model was not installed"
        self._light(self.session.decline, then=lambda _: setattr(self.status, "value", kept))

    def on_errored(self, err) -> None:
        step = self.flow.step
        if step in (Step.FINETUNING, Step.COMPARING, Step.RESEGMENTING):
            self.flow.fire(Event.FAILED)
        super().on_errored(err)
        if step is Step.COMPARING:  # no figures: the user decides
            self.adoption.ask(f"the models could not be compared ({self.status.value}); choose")

    def on_finished(self) -> None:
        job, self._next_job = self._next_job, None
        if job is not None:
            job()
