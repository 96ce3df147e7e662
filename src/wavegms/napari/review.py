"""The "Review results" dock: the correction loop over a segmented folder.

A sortable table of the output folder (name, mask area, uncertainty, and DSC/IoU/HD95 when
the run was scored; most uncertain first); selecting a row shows the image and its mask as a
labels layer, ready to paint, and the soft mask on demand. Accept adds the image and the
(corrected) mask to the training set and moves to the next most uncertain image; Skip moves
on; Fine-tune now fine-tunes on the accepted pairs in a child process (the fine-tune dock's
job and settings), then segments the images not yet reviewed again in the background.

The work is :class:`wavegms.inference.review.ReviewSession`'s; files are read and written in
worker threads, so the GUI thread holds no torch and reads no image.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import ComboBox, FileEdit, LineEdit, PushButton
from napari.qt.threading import create_worker
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem

from wavegms.core.errors import InputError
from wavegms.inference.review import ReviewSession
from wavegms.napari.feedback import guarded, report_error
from wavegms.napari.fields import complete_device_list, device_choices, model_choices
from wavegms.napari.finetune_job import launch
from wavegms.napari.runner import JobForm
from wavegms.napari.settings import BatchSettings, FinetuneSettings, load_settings
from wavegms.training.finetune import new_run_dir

if TYPE_CHECKING:
    import napari

IMAGE, MASK, SOFT = "review: image", "review: mask", "review: soft mask"
COLUMNS = (  # header, results.csv column, decimals
    ("name", "name", None),
    ("status", "status", None),
    ("mask area", "mask_area", 0),
    ("uncertainty", "uncertainty", 4),
    ("DSC %", "dsc_native", 2),
    ("IoU %", "iou_native", 2),
    ("HD95 px", "hd95_native", 2),
)


def _cell(value, decimals: int | None) -> QTableWidgetItem:
    """A read-only cell; numbers are kept as numbers, so sorting by them is numeric."""
    item = QTableWidgetItem()
    if decimals is None:
        item.setText(str(value))
    else:
        item.setData(Qt.ItemDataRole.DisplayRole, round(float(value), decimals))
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    return item


def _read_pair(session: ReviewSession, name: str) -> tuple[str, object, object]:
    """Worker: the image and its mask as labels (0/1)."""
    return name, session.image(name), session.mask(name).astype("uint8")


def _read_soft(session: ReviewSession, name: str) -> tuple[str, object]:
    from wavegms.data.images import read_image
    from wavegms.inference.folder_outputs import output_paths

    return name, read_image(output_paths(session.out_dir, name)[1])


def resegment_job(session: ReviewSession, device: str, progress=None, cancel=None) -> str:
    """Worker: segment the images not yet reviewed with the session's (new) model."""
    report = session.resegment(device, progress, cancel)
    return "nothing left to segment" if report is None else report.summary().splitlines()[0]


class ReviewWidget(JobForm):
    dock_title = "Review results"
    cancel_message = "stopping…"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__("Fine-tune now", cancel_text="Stop")
        self.viewer = viewer
        self.session: ReviewSession | None = None
        self.current: str | None = None  # the row shown in the layers
        self.phase = ""  # "finetune" or "resegment": the job running
        self._loaders: list = []  # running file readers (kept from garbage collection)
        batch = load_settings(BatchSettings)  # the last batch run is the likely one to review
        self.out_dir = FileEdit(label="results folder", mode="d", nullable=True)
        self.images_dir = FileEdit(label="images folder", mode="d", nullable=True)
        self.gt_dir = FileEdit(label="ground truth (optional)", mode="d", nullable=True)
        self.out_dir.value = batch.output_dir or None
        self.images_dir.value = batch.input_dir or None
        self.gt_dir.value = batch.gt_dir or None
        self.model = ComboBox(label="model", choices=model_choices)
        if batch.model in self.model.choices:
            self.model.value = batch.model
        self.device = ComboBox(label="device", choices=device_choices)
        self.project = LineEdit(label="training set", value="review")
        self.open_button = PushButton(text="Open results")
        self.soft_button = PushButton(text="Show soft mask")
        self.accept_button = PushButton(text="Accept (add to training set, next)")
        self.skip_button = PushButton(text="Skip")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([c[0] for c in COLUMNS])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setSortingEnabled(True)
        self.extend([self.out_dir, self.images_dir, self.gt_dir, self.model, self.device])
        self.extend([self.project, self.open_button])
        self.content.layout().addWidget(self.table)
        self.extend([self.soft_button, self.accept_button, self.skip_button])
        self.add_job_controls()
        complete_device_list(self.device, "auto")
        self.open_button.changed.connect(guarded(self.open_results, self.status))
        self.soft_button.changed.connect(guarded(self.show_soft, self.status))
        self.accept_button.changed.connect(guarded(self.accept, self.status))
        self.skip_button.changed.connect(guarded(self.skip, self.status))
        self.table.itemSelectionChanged.connect(guarded(self._row_chosen, self.status))
        self.finish_layout()

    # -- the table -----------------------------------------------------------------------
    def open_results(self, _value=None) -> None:
        folder = lambda w: str(w.value) if w.value not in (None, "", Path(".")) else None  # noqa: E731
        out = folder(self.out_dir)
        if out is None:
            raise InputError("choose the results folder of a batch run")
        self.session = ReviewSession.open(
            out, folder(self.images_dir), self.model.value, self.project.value.strip(),
            folder(self.gt_dir),
        )  # fmt: skip
        self.refresh_table()
        self.select(self.session.next())

    def refresh_table(self) -> None:
        """The table from results.csv (small: read here), most uncertain first."""
        state = self.session.state
        status = {
            **dict.fromkeys(state.skipped, "skipped"),
            **dict.fromkeys(state.accepted, "accepted"),
        }
        rows = self.session.rows()
        columns = [c for c in COLUMNS if c[1] in ("name", "status") or c[1] in rows[0]]
        self.table.setSortingEnabled(False)
        self.table.clear()
        self.table.setColumnCount(len(columns))
        self.table.setHorizontalHeaderLabels([c[0] for c in columns])
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            row = {**row, "status": status.get(row["name"], "")}
            for c, (_, key, decimals) in enumerate(columns):
                self.table.setItem(r, c, _cell(row[key], decimals))
        self.table.resizeColumnsToContents()
        self.table.setSortingEnabled(True)
        uncertainty = [c[1] for c in columns].index("uncertainty")
        self.table.sortItems(uncertainty, Qt.SortOrder.DescendingOrder)
        left = len(self.session.pending())
        self.status.value = f"{left} of {len(rows)} image(s) to review; model {state.model}"

    def names(self) -> list[str]:
        """The names in the table's current order."""
        return [self.table.item(r, 0).text() for r in range(self.table.rowCount())]

    def select(self, name: str | None) -> None:
        if name is None:
            self.status.value = "every image is reviewed"
            return
        self.table.selectRow(self.names().index(name))

    def _row_chosen(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows and self.session is not None:
            name = self.table.item(rows[0].row(), 0).text()
            self._in_worker(self._show_pair, _read_pair, self.session, name)

    # -- layers --------------------------------------------------------------------------
    def _in_worker(self, then, function, *args) -> None:
        """``function(*args)`` in a worker thread (files); ``then`` gets its result here."""
        worker = create_worker(function, *args, _ignore_errors=True)
        worker.returned.connect(guarded(then, self.status))
        worker.errored.connect(lambda err: report_error(self.status, err))
        worker.finished.connect(lambda: self._loaders.remove(worker))
        self._loaders.append(worker)
        worker.start()

    def _layer(self, name: str, kind: str, data):
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.data = data
            return layer
        return getattr(self.viewer, f"add_{kind}")(data, name=name)

    def _show_pair(self, result) -> None:
        name, image, mask = result
        if SOFT in self.viewer.layers:
            self.viewer.layers.remove(SOFT)  # another image's
        layers = self.viewer.layers
        resized = IMAGE not in layers or layers[IMAGE].data.shape != image.shape
        self._layer(IMAGE, "image", image)
        if resized:
            self.viewer.reset_view()  # another size: show it whole
        labels = self._layer(MASK, "labels", mask)
        self.viewer.layers.selection.active = labels
        labels.mode = "paint"
        self.current = name

    def show_soft(self, _value=None) -> None:
        if self.current is None:
            raise InputError("select an image in the table first")
        self._in_worker(self._show_soft, _read_soft, self.session, self.current)

    def _show_soft(self, result) -> None:
        name, soft = result
        if name == self.current:
            layer = self._layer(SOFT, "image", soft)
            layer.colormap, layer.opacity, layer.blending = "magma", 0.5, "additive"

    # -- the loop ------------------------------------------------------------------------
    def _shown(self) -> str:
        if self.session is None or self.current is None or MASK not in self.viewer.layers:
            raise InputError("open a results folder and select an image first")
        return self.current

    def accept(self, _value=None) -> None:
        name = self._shown()
        mask = self.viewer.layers[MASK].data  # handed to the worker as it is: no copy here
        done = lambda _entry: self._reviewed(name, "accepted")  # noqa: E731
        self._in_worker(done, self.session.accept, name, mask)

    def skip(self, _value=None) -> None:
        name = self._shown()
        self.session.skip(name)  # a small JSON file
        self._reviewed(name, "skipped")

    def _reviewed(self, name: str, how: str) -> None:
        self.refresh_table()
        self.select(self.session.next())
        self.status.value = f"{how} {name}; " + self.status.value

    def start(self) -> None:
        """Fine-tune now: the fine-tune dock's settings on the accepted pairs."""
        if self.session is None:
            raise InputError("open a results folder first")
        template = load_settings(FinetuneSettings).request
        template = dataclasses.replace(template, device=self.device.value or "auto")
        request = self.session.finetune_request(template)
        request = dataclasses.replace(request, out_dir=str(new_run_dir(request.new_name)))
        self.request, self.phase = request, "finetune"
        self.start_process(launch, f"fine-tuning {request.new_name}", request, request.epochs)

    def on_returned(self, result) -> None:
        if self.phase == "finetune":
            if result["installed"] is None:
                self.phase = ""
                self.status.value = "stopped before the first epoch ended: no model was made"
                return
            self.session.adopt(self.request.new_name)
            self.phase = "resegment-next"
        else:
            self.refresh_table()
            self.status.value = f"{result}; " + self.status.value

    def on_errored(self, err) -> None:
        self.phase = ""
        super().on_errored(err)

    def on_finished(self) -> None:
        if self.phase == "resegment-next":
            self.phase = "resegment"
            device = self.device.value or "auto"
            self.start_thread(
                resegment_job, "segmenting the rest", session=self.session, device=device
            )
        elif self.phase == "resegment":
            self.phase = ""
            self.select(self.session.next())
