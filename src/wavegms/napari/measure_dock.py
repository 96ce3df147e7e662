"""The "Lesion measurements" dock: the lesions table (:mod:`wavegms.scoring.lesions`, the
same as a run's ``lesions.csv``) of the active Labels layer, in mm at the layer's scale, kept
up to date as the layer is painted or replaced, and saved as CSV.

The layer's scale is its pixel spacing: a layer opened from DICOM or NIfTI (and the labels
made from it) carries mm; a layer at scale 1 gives pixels only. A stack is measured plane by
plane. Measuring runs in a napari worker thread, the newest edit winning; the GUI thread only
fills the table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import Container, Label, PushButton, Table
from napari.layers import Labels
from napari.qt.threading import create_worker
from qtpy.QtCore import QTimer

from wavegms.core.errors import InputError
from wavegms.scoring.lesions import lesions_csv, measure_lesions

if TYPE_CHECKING:
    import napari

#: what the table shows (the CSV has every column)
SHOWN = (
    "name", "label", "lesion", "area_px", "area_mm2", "longest_diameter_mm",
    "perpendicular_width_mm", "perimeter_mm", "longest_diameter_px", "perpendicular_width_px",
    "centroid_row", "centroid_col",
)  # fmt: skip

#: how long the table waits after an edit before measuring again (a brush stroke is many)
SETTLE_MS = 300


def layer_spacing(layer) -> tuple[float, float] | None:
    """mm per pixel (row, column) from a layer's scale; None at scale 1 (no spacing known)."""
    row, col = (float(v) for v in layer.scale[-2:])
    return None if (row, col) == (1.0, 1.0) else (row, col)


def measure_layer(data, spacing, name: str) -> list[dict]:
    """The lesion rows of a labels layer's data (2D, or a stack measured plane by plane)."""
    labels = np.asarray(data)
    if labels.ndim < 2:
        raise InputError(f"{name}: a labels layer of shape {labels.shape} has no planes")
    if labels.ndim == 2:
        return measure_lesions(labels, spacing, name=name)
    rows: list[dict] = []
    for index in np.ndindex(*labels.shape[:-2]):
        plane = labels[index]
        if plane.any():
            rows += measure_lesions(plane, spacing, name=f"{name}{list(index)}")
    return rows


class MeasureWidget(Container):
    """The lesions table of the active Labels layer."""

    dock_title = "Lesion measurements"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.layer: Labels | None = None
        self.rows: list[dict] = []
        self.status = Label(value="select a labels layer")
        self.table = Table(value={"data": [], "columns": list(SHOWN)})
        self.save_button = PushButton(text="Save as CSV…")
        self.save_button.changed.connect(self.save_dialog)
        self.extend([self.status, self.table, self.save_button])
        self._pending = 0  # the newest measurement asked for; older results are dropped
        self._done = 0  # the newest measurement that came back
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(SETTLE_MS)
        self._timer.timeout.connect(self.measure)
        viewer.layers.selection.events.active.connect(self._on_active)
        self._on_active()

    @property
    def busy(self) -> bool:
        """Whether a measurement is still on its way."""
        return self._done != self._pending

    def _on_active(self, _event=None) -> None:
        active = self.viewer.layers.selection.active
        if not isinstance(active, Labels) or active is self.layer:
            return
        if self.layer is not None:
            for event in (self.layer.events.data, self.layer.events.paint,
                          self.layer.events.scale):  # fmt: skip
                event.disconnect(self._edited)
        self.layer = active
        for event in (active.events.data, active.events.paint, active.events.scale):
            event.connect(self._edited)
        self.measure()

    def _edited(self, _event=None) -> None:
        self._timer.start()  # measured once the edits settle

    def measure(self) -> None:
        """Measure the layer in a worker thread; the newest request's result is shown. The
        layer's array is read there, not copied here: a stroke painted meanwhile is measured
        by the request its own edit event starts."""
        layer = self.layer
        if layer is None:
            return
        self._pending += 1
        ticket = self._pending
        self.status.value = f"measuring {layer.name}…"
        worker = create_worker(measure_layer, layer.data, layer_spacing(layer), layer.name)
        worker.returned.connect(lambda rows: self._show(ticket, rows))
        worker.errored.connect(lambda err: self._failed(ticket, err))
        worker.start()

    def _show(self, ticket: int, rows: list[dict]) -> None:
        self._done = max(self._done, ticket)
        if ticket != self._pending:
            return  # an edit came after: its measurement is on its way
        self.rows = rows
        cells = [["" if r[k] is None else round(r[k], 3) if isinstance(r[k], float) else r[k]
                  for k in SHOWN] for r in rows]  # fmt: skip
        self.table.value = {"data": cells, "columns": list(SHOWN)}
        units = "mm (layer scale)" if rows and rows[0]["area_mm2"] is not None else "pixels"
        name = self.layer.name if self.layer is not None else ""
        self.status.value = f"{name}: {len(rows)} lesion(s), in {units}"

    def _failed(self, ticket: int, err: BaseException) -> None:
        self._done = max(self._done, ticket)
        if ticket == self._pending:
            self.status.value = f"could not measure: {err}"

    def save(self, path: str) -> None:
        """Write the table shown (every column of lesions.csv) to ``path``, atomically."""
        from wavegms.core.files import write_text

        write_text(path, lesions_csv(self.rows))
        self.status.value = f"saved {len(self.rows)} lesion(s) to {path}"

    def save_dialog(self, _value=None) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(
            self.native, "Save lesion measurements", "lesions.csv", "CSV (*.csv)"
        )
        if path:
            self.save(path)
