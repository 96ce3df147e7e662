"""The batch panel (menu Layers > Segment): segment a folder, optionally score it.

Writes binary and soft masks and a CSV table (see ``jobs.batch_job``), in a worker thread with
progress and Cancel. Existing outputs are replaced only when "replace existing outputs" is
ticked or the user agrees in a dialog.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    FloatSpinBox,
    TextEdit,
)
from qtpy.QtWidgets import QMessageBox

from wavegms.core.errors import OutputExistsError
from wavegms.napari.dock_lifetime import DockLifetime
from wavegms.napari.docking import dock_of
from wavegms.napari.feedback import report_error
from wavegms.napari.fields import (
    complete_device_list,
    device_choices,
    model_choices,
    on_edit_finished,
)
from wavegms.napari.jobs import BatchResult, ModelSlot, batch_job
from wavegms.napari.runner import JobForm
from wavegms.napari.settings import BatchSettings, load_settings, save_settings

if TYPE_CHECKING:
    import napari


def _folder(value) -> str:
    return "" if value in (None, "", Path(".")) else str(value)


class BatchWidget(JobForm):
    """The form inside the batch dialog."""

    cancel_message = "cancelling after the current image…"
    dock_title = "Segment a folder"

    def __init__(self, viewer: napari.viewer.Viewer | None = None) -> None:
        super().__init__("Run")
        self.viewer = viewer
        s = self.settings = load_settings(BatchSettings)
        self.slot = ModelSlot()
        self.lifetime = DockLifetime(self.native, self.slot.close)  # frees the model with the dock
        self.error: BaseException | None = None
        self.result: BatchResult | None = None
        self.input_dir = FileEdit(label="input folder", mode="d", nullable=True)
        self.output_dir = FileEdit(label="output folder", mode="d", nullable=True)
        self.gt_dir = FileEdit(label="ground truth", mode="d", nullable=True)
        for edit in (self.input_dir, self.output_dir, self.gt_dir):
            edit.choose_btn.text = "…"  # "Choose directory" three times made the dock wide
            edit.choose_btn.native.setMaximumWidth(32)
        self.gt_dir.tooltip = "optional: masks named like the images, to score each image"
        self.model = ComboBox(label="model", choices=model_choices)
        self.device = ComboBox(label="device", choices=device_choices)
        self.threshold = FloatSpinBox(
            label="threshold", min=0.0, max=1.0, step=0.05, value=s.threshold
        )
        self.overwrite = CheckBox(text="replace existing outputs", value=False)
        self.report = TextEdit(value="")
        self.report.read_only = True
        self.report.native.setMaximumHeight(140)  # the summary scrolls; the dock keeps its size
        self.extend([self.input_dir, self.output_dir, self.gt_dir, self.model, self.device])
        self.extend([self.threshold, self.overwrite])
        self.add_job_controls()
        self.add_rows(self.report)  # the dock's whole width
        for widget, value in ((self.input_dir, s.input_dir), (self.output_dir, s.output_dir)):
            widget.value = value or None
        self.gt_dir.value = s.gt_dir or None
        self.model.value = s.model if s.model in self.model.choices else self.model.value
        if s.device in self.device.choices:
            self.device.value = s.device
        fields = (self.input_dir, self.output_dir, self.gt_dir, self.model, self.device)
        on_edit_finished((*fields, self.threshold), self._save_settings, self.status)
        complete_device_list(self.device, s.device)  # listed by a worker (torch)
        self.finish_layout()

    def _save_settings(self, _value=None) -> None:
        self.settings = BatchSettings(
            input_dir=_folder(self.input_dir.value),
            output_dir=_folder(self.output_dir.value),
            gt_dir=_folder(self.gt_dir.value),
            model=self.model.value or "",
            device=self.device.value or "auto",
            threshold=float(self.threshold.value),
        )
        save_settings(self.settings)

    def start(self, overwrite: bool | None = None) -> None:
        self._save_settings()
        s = self.settings
        self.error = self.result = None
        self.report.value = ""
        self.start_thread(
            batch_job,
            "batch segmentation",
            in_dir=s.input_dir,
            out_dir=s.output_dir,
            model=s.model,
            device=s.device,
            threshold=s.threshold,
            gt_dir=s.gt_dir,
            overwrite=bool(self.overwrite.value) if overwrite is None else overwrite,
            slot=self.slot,
        )

    def on_returned(self, result: BatchResult) -> None:
        self.result = result

    def on_errored(self, err: BaseException) -> None:
        self.error = err  # concluded once the form is idle: it may start the job again

    def on_finished(self) -> None:
        if isinstance(self.error, OutputExistsError) and not self.overwrite.value:
            if self.confirm_overwrite(str(self.error)):
                self.start(overwrite=True)
            else:
                report_error(self.status, f"nothing written: {self.error}")
            return
        if self.error is not None:
            report_error(self.status, self.error)
            return
        if self.result is not None:
            self.report.value = self.result.summary()
            self.status.value = written_text(self.result)

    def confirm_overwrite(self, message: str) -> bool:
        """Ask before replacing outputs (tests tick the checkbox or replace this method)."""
        answer = QMessageBox.question(
            self.native, "Replace existing outputs?", f"{message}\n\nReplace them?"
        )
        return answer == QMessageBox.StandardButton.Yes


def written_text(result: BatchResult) -> str:
    """The status line after a run: what was written, counted from the files written."""
    how = "cancelled" if result.cancelled else "done"
    line = f"{how}: {result.written} of {result.total} image(s) written to {result.out_dir}"
    if result.skipped:
        line += f", {len(result.skipped)} skipped"
    return line


PANEL_NAME = "Wave-GMS: segment a folder"


def open_batch_dialog(viewer: napari.viewer.Viewer) -> BatchWidget:
    """The menu command: show the batch panel docked on the right, beside any other docks (a
    floating window opened over napari's menu bar and grew past the screen; one panel per
    viewer: a second call shows the open one again)."""
    existing = viewer.window.dock_widgets.get(PANEL_NAME)
    if isinstance(existing, BatchWidget):
        dock = dock_of(existing.native)
        if dock is not None:
            dock.show()
            dock.raise_()
        return existing
    widget = BatchWidget(viewer)
    viewer.window.add_dock_widget(widget, name=PANEL_NAME, area="right", tabify=False)
    return widget
