"""Small Qt helpers shared by the widgets: choices, error display, progress display."""

from __future__ import annotations

import traceback

import numpy as np
from magicgui.widgets import Container, Label, PushButton
from napari.qt.threading import create_worker
from napari.utils import progress as napari_progress
from napari.utils.notifications import show_error
from qtpy.QtCore import QObject, Signal, Slot

from wavegms.core.errors import Cancelled, WaveGMSError
from wavegms.core.progress import CancelToken, Progress
from wavegms.napari.jobs import error_text


def model_choices(_widget=None) -> list[str]:
    """Every model by name: shipped first, then the user's fine-tuned ones."""
    from wavegms.store.catalogue import list_models

    return list(list_models())


def device_choices(_widget=None) -> list[str]:
    """``auto`` first, then the devices this machine has."""
    from wavegms.core.devices import available_devices

    return available_devices()


def report_error(label: Label, err: BaseException | str) -> None:
    """Show an error in the widget's status label and as a napari notification.

    Never raises: this runs in Qt slots, where an exception would reach napari's event loop.
    """
    text = err if isinstance(err, str) else error_text(err)
    if isinstance(err, BaseException) and not isinstance(err, WaveGMSError):
        traceback.print_exception(type(err), err, err.__traceback__)
    label.value = f"Error: {text}"
    try:
        show_error(text)
    except Exception:  # a notification failing must not hide the label's message
        traceback.print_exc()


class ProgressRelay(QObject):
    """Carries :class:`Progress` reports from a worker thread to a GUI-thread callback.

    A worker calls the relay like a ``ProgressCallback``; the signal is queued across threads
    because the relay lives in the GUI thread.
    """

    reported = Signal(object)

    def __init__(self, callback) -> None:
        super().__init__()
        self._callback = callback
        self.reported.connect(self._deliver)

    def __call__(self, report: Progress) -> None:
        self.reported.emit(report)

    @Slot(object)
    def _deliver(self, report: Progress) -> None:
        self._callback(report)


class ProgressDisplay:
    """Renders :class:`Progress` reports as a napari progress bar and a status label."""

    def __init__(self, label: Label) -> None:
        self.label = label
        self.bar: napari_progress | None = None
        self.last: Progress | None = None
        self._stage = ""

    def start(self, description: str) -> None:
        self.close()
        self.bar = napari_progress(total=0, desc=description)
        self._stage = ""
        self.last = None
        self.label.value = description

    def show(self, report: Progress) -> None:
        bar = self.bar
        self.last = report
        if bar is None:  # a report queued before the job ended, delivered after: stale
            return
        text = f"{report.stage} {report.done}/{report.total} {report.message}".strip()
        extras = " ".join(f"{k}={v:.3g}" for k, v in report.metrics.items())
        self.label.value = f"{text} {extras}".strip()
        if report.stage != self._stage or report.total != bar.total:
            self._stage = report.stage
            bar.reset(total=report.total)
            bar.set_description(report.stage)
        bar.update(report.done - bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class LayerWatcher:
    """Calls ``callback()`` whenever the viewer's layers are added, removed, moved or renamed."""

    def __init__(self, viewer, callback) -> None:
        self.callback = callback
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self._changed)
        viewer.layers.events.moved.connect(self._changed)
        for layer in viewer.layers:
            layer.events.name.connect(self._changed)

    def _changed(self, event=None) -> None:
        if event is not None and getattr(event, "type", "") == "inserted":
            event.value.events.name.connect(self._changed)
        self.callback()


def layer_data(layer) -> np.ndarray:
    """The full-resolution data of a layer as a numpy array."""
    return np.asarray(layer.data[0] if layer.multiscale else layer.data)


def current_plane(layer, viewer) -> np.ndarray:
    """The 2D plane (HxW, or HxWxC for RGB) of ``layer`` that the viewer shows now."""
    data = layer_data(layer)
    spatial = 3 if getattr(layer, "rgb", False) else 2
    lead = data.ndim - spatial
    if lead <= 0:
        return data
    point = layer.world_to_data(viewer.dims.point)
    index = tuple(
        int(np.clip(round(float(c)), 0, n - 1))
        for c, n in zip(point[:lead], data.shape[:lead], strict=True)
    )
    return data[index]


class JobWidget(Container):
    """A form that runs one job at a time in a napari worker thread, with a progress bar, a
    status line and Cancel. Subclasses build their fields, call :meth:`add_job_controls`,
    start work with :meth:`start_job` and receive ``on_returned`` / ``on_errored`` /
    ``on_finished`` in the GUI thread."""

    cancel_message = "cancelling…"

    def __init__(self, run_text: str) -> None:
        super().__init__(labels=True)
        self.worker = None
        self.cancel_token: CancelToken | None = None
        self.run_button = PushButton(text=run_text)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.status = Label(value="")
        self.progress = ProgressDisplay(self.status)
        self.relay = ProgressRelay(self.progress.show)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)

    def add_job_controls(self) -> None:
        self.extend([self.run_button, self.cancel_button, self.status])

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def run(self, _value=None) -> None:
        """The button's slot: start the job, showing (never raising) what goes wrong."""
        if self.busy:
            return
        try:
            self.start()
        except Exception as err:  # raised into Qt's event loop it would reach napari
            self._end()
            report_error(self.status, err)

    def start(self) -> None:
        raise NotImplementedError

    def start_job(self, function, description: str, **kwargs) -> None:
        """Run ``function(**kwargs, progress=..., cancel=...)`` in a worker thread."""
        self.cancel_token = CancelToken()
        self.progress.start(description)
        self.worker = create_worker(
            function, **kwargs, progress=self.relay, cancel=self.cancel_token, _ignore_errors=True
        )
        self.worker.returned.connect(self._guarded(self.on_returned))
        self.worker.errored.connect(self._guarded(self.on_errored))
        self.worker.finished.connect(self._finished)
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.worker.start()

    def cancel(self, _value=None) -> None:
        if self.cancel_token is not None:
            self.cancel_token.cancel()
            self.status.value = self.cancel_message

    def on_returned(self, result) -> None:
        """The job's result (GUI thread)."""

    def on_errored(self, err: BaseException) -> None:
        if isinstance(err, Cancelled):
            self.status.value = "cancelled"
        else:
            report_error(self.status, err)

    def on_finished(self) -> None:
        """After the job, whatever its outcome, once the form is idle again."""

    def _guarded(self, slot):
        return GuardedSlot(slot, self.status)

    def _finished(self) -> None:
        self._end()
        self._guarded(self.on_finished)()

    def _end(self) -> None:
        self.progress.close()
        self.worker = self.cancel_token = None
        self.run_button.enabled, self.cancel_button.enabled = True, False


class GuardedSlot:
    """A Qt slot that shows any exception in a status label instead of raising it."""

    def __init__(self, slot, label: Label) -> None:
        self.slot, self.label = slot, label

    def __call__(self, *args) -> None:
        try:
            self.slot(*args)
        except Exception as err:
            report_error(self.label, err)
