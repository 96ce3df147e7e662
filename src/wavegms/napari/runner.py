"""The plugin's one background mechanism: one job protocol (``process_job.JobHost``: typed
:class:`~wavegms.core.progress.Progress` reports, a result, an error, the end; Cancel through
a token or a "stop" frame) on two carriers, a worker thread (:class:`ThreadJob`) and a child
process (``process_job.ProcessJob``, for training). A form runs one job at a time with one
progress bar, one Cancel/Stop button and one way of showing errors; short file work of a dock
(reading a pair, writing an Accept) runs as a :class:`LightJob` on the same thread carrier.

A form subclasses :class:`JobForm`, calls :meth:`JobForm.add_job_controls` and starts work in
:meth:`JobForm.start` (``start_thread`` or ``start_process``); both carriers end the same way,
in the GUI thread: ``on_returned`` or ``on_errored``, then ``on_finished`` once idle again.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

from magicgui.widgets import Container, ProgressBar, PushButton
from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, Qt, Signal, Slot
from qtpy.QtWidgets import QComboBox, QSizePolicy

from wavegms.core.errors import Cancelled
from wavegms.core.progress import CancelToken, Progress
from wavegms.napari.docking import fit_dock, unlabel
from wavegms.napari.feedback import ProgressDisplay, StatusLabel, guarded, report_error
from wavegms.napari.fields import after_build
from wavegms.napari.process_job import JobHost, ProcessJob

#: The widest a dock insists on being: at 1280 px napari's own layer docks take about 330 px,
#: and the canvas keeps at least half the window; wider rows scroll sideways.
MAX_MIN_WIDTH = 270


class JobForm(Container):
    cancel_message = "cancelling…"
    #: A thread job whose result is of no use once cancelled (Segment): Cancel frees the form
    #: at once and the result, whenever the worker gets there, is dropped.
    drop_on_cancel = False
    dropped_message = "cancelled"

    #: The dock's title (napari's "<name> (napari-wavegms)" was clipped); "": napari's.
    dock_title = ""

    def __init__(self, run_text: str, cancel_text: str = "Cancel", nested: bool = False) -> None:
        # A tall form scrolls in its dock; a form inside another (``nested``) scrolls with it.
        super().__init__(labels=not nested, scrollable=not nested)
        self.nested = nested
        self.job: ThreadJob | ProcessJob | None = None
        self.run_button = PushButton(text=run_text)
        self.cancel_button = PushButton(text=cancel_text, enabled=False)
        self.buttons = Container(widgets=[self.run_button, self.cancel_button], layout="horizontal")
        self.buttons.margins = (0, 0, 0, 0)
        self.progress_bar = ProgressBar(value=0)
        self.status = StatusLabel()
        self.progress = ProgressDisplay(self.status, self.progress_bar.native)
        self.relay = ProgressRelay(self._report)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)

    @property
    def native(self):
        """The scroll area around the form: napari docks a magicgui widget's ``native``, and
        magicgui's own ``native`` is the content inside the scroll area (which napari would
        take out of it, so that a tall form grew the window past the screen)."""
        return self.root_native_widget

    @property
    def content(self):
        """The QWidget holding the form's rows (inside the scroll area)."""
        return self._widget._mgui_get_native_widget()

    def add_job_controls(self) -> None:
        self.add_rows(self.buttons, self.progress_bar, self.status)

    def add_rows(self, *rows) -> None:
        """Append rows that have no label (buttons, progress, status, headings) at the
        dock's whole width: the status wraps less and the dock stays narrow."""
        self.extend(rows)
        for row in rows:
            if not self.nested:
                unlabel(row.native)

    #: Whether the dock takes the height left over by other docks (Fine-tune, with its plot)
    #: or keeps the height of its rows (Segment), so that docked together both fit.
    grows_vertically = True

    def _fit_to_rows(self) -> None:
        content = self.content.minimumSizeHint()
        scrollbar = self.native.verticalScrollBar().sizeHint().width()
        frame = 2 * self.native.frameWidth()
        self.native.setMinimumWidth(min(content.width() + scrollbar + frame + 2, MAX_MIN_WIDTH))
        if not self.grows_vertically:  # all its rows shown, never scrolled away
            height = self.content.sizeHint().height() + frame + 2
            self.native.setMinimumHeight(min(height, 420))

    def _docked(self) -> None:
        """Once docked and styled (sizes grow then): the minimum again, the dock's width and
        title."""
        self._fit_to_rows()
        fit_dock(self.native, self.dock_title)

    def finish_layout(self) -> None:
        """Called last by each form: rows packed at the top, a narrow minimum width (magicgui
        set it to the widest row), and the dock's vertical share."""
        self.content.layout().addStretch(1)
        for widget in self:
            if isinstance(widget.native, QComboBox):  # long layer names must not widen it
                widget.native.setSizeAdjustPolicy(
                    QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
                )
                widget.native.setMinimumContentsLength(8)
        self._fit_to_rows()
        after_build(self._docked)
        # Never cut off a field: a dock made narrower than its rows scrolls sideways too.
        self.native.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        policy = (
            QSizePolicy.Policy.Expanding if self.grows_vertically else QSizePolicy.Policy.Maximum
        )
        self.native.setSizePolicy(QSizePolicy.Policy.Preferred, policy)

    @property
    def busy(self) -> bool:
        return self.job is not None

    # -- what a form provides --------------------------------------------------------------
    def start(self) -> None:
        """Check the form and start the job (raise to refuse, with a one-line reason)."""
        raise NotImplementedError

    def on_progress(self, report: Progress) -> None:
        """Each progress report, after the progress bar has shown it (GUI thread)."""

    def on_returned(self, result) -> None:
        """The job's result (GUI thread)."""

    def on_errored(self, err: BaseException | str) -> None:
        if isinstance(err, Cancelled):
            self.status.value = "cancelled"
        else:
            report_error(self.status, err)

    def on_finished(self) -> None:
        """After the job, whatever its outcome, once the form is idle again."""

    # -- running ---------------------------------------------------------------------------
    def run(self, _value=None) -> None:
        """The Run button's slot: start the job, showing (never raising) what goes wrong."""
        if self.busy:
            return
        try:
            self.start()
        except Exception as err:  # raised into Qt's event loop it would reach napari
            self._end()
            report_error(self.status, err)

    def start_thread(self, function: Callable, description: str, **kwargs) -> None:
        """Run ``function(**kwargs, progress=..., cancel=...)`` in a napari worker thread."""
        self._begin(description)
        self.job = ThreadJob(self, function, kwargs, self.relay)

    def start_process(
        self, launch: Callable, description: str, payload: object, epochs: int = 0, note: str = ""
    ) -> None:
        """Run ``launch(payload)``'s child process (``process_job.ProcessJob``); ``epochs``:
        a training's planned epochs, for its progress bar and time estimate; ``note``: shown
        with its progress (``ProgressDisplay.start``)."""
        self._begin(description, epochs, note)
        self.job = ProcessJob(self, launch, payload)

    def cancel(self, _value=None) -> None:
        if self.job is None:
            return
        self.job.cancel()
        if self.drop_on_cancel and isinstance(self.job, ThreadJob):
            self._end()
            self.status.value = self.dropped_message
            guarded(self.on_finished, self.status)()
        else:
            self.status.value = self.cancel_message

    def shutdown(self) -> None:
        """End a running job at once (a child process is terminated) and forget it."""
        if self.job is not None:
            self.job.kill()
        self._end()

    # -- called by the jobs, in the GUI thread ---------------------------------------------
    def _report(self, report: Progress) -> None:
        self.progress.show(report)
        guarded(self.on_progress, self.status)(report)

    def _conclude(self, job, slot: Callable, *args) -> None:
        if job is self.job:  # not a job that shutdown() already forgot
            guarded(slot, self.status)(*args)

    def _finished(self, job) -> None:
        if job is self.job:
            self._end()
            guarded(self.on_finished, self.status)()

    def _begin(self, description: str, epochs: int = 0, note: str = "") -> None:
        self.progress.start(description, epochs, note)
        self.run_button.enabled, self.cancel_button.enabled = False, True

    def _end(self) -> None:
        self.progress.close()
        self.job = None
        self.run_button.enabled, self.cancel_button.enabled = True, False


class ProgressRelay(QObject):
    """Carries :class:`Progress` reports from a worker thread to a GUI-thread callback.

    A worker calls the relay like a ``ProgressCallback``; the signal is queued across threads
    because the relay lives in the GUI thread.
    """

    reported = Signal(object)

    def __init__(self, callback: Callable[[Progress], None]) -> None:
        super().__init__()
        self._callback = callback
        self.reported.connect(self._deliver)

    def __call__(self, report: Progress) -> None:
        self.reported.emit(report)

    @Slot(object)
    def _deliver(self, report: Progress) -> None:
        self._callback(report)


class ThreadJob:
    """The thread carrier: a napari worker; Cancel sets a token the work checks. It reports
    to its host (a :class:`JobForm`, or a :class:`LightJob` for a short piece of file work)
    through the same protocol as the process carrier (``process_job.JobHost``)."""

    def __init__(self, host: JobHost, function: Callable, kwargs: dict, relay=None) -> None:
        self.token = CancelToken()
        self.worker = create_worker(
            function, **kwargs, progress=relay, cancel=self.token, _ignore_errors=True
        )
        self.worker.returned.connect(lambda result: host._conclude(self, host.on_returned, result))
        self.worker.errored.connect(lambda err: host._conclude(self, host.on_errored, err))
        self.worker.finished.connect(lambda: host._finished(self))
        self.worker.start()

    def cancel(self) -> None:
        self.token.cancel()

    kill = cancel  # a thread cannot be killed: it stops at its next check


#: Light jobs running now (kept from garbage collection until they end).
_LIGHT: set[LightJob] = set()


class LightJob:
    """A short piece of work off the GUI thread (reading a pair, writing an Accept, reading a
    table) whose result goes to ``then`` and whose error to ``status``: the one job protocol
    on the thread carrier, without a progress bar or the form's one-job-at-a-time rule."""

    def __init__(
        self, function: Callable, args: tuple, then: Callable, status, failed=None
    ) -> None:
        self.function, self.then, self.failed = function, then, failed
        # Weak: a dock closed while its light job runs is not kept alive by it.
        self._status = weakref.ref(status)
        _LIGHT.add(self)
        self.job = ThreadJob(self, self._call, {"args": args})

    def _call(self, args: tuple, progress=None, cancel=None):
        return self.function(*args)

    def _report(self, report: Progress) -> None:
        pass

    status = property(lambda self: self._status())

    def _conclude(self, job, slot: Callable, *args) -> None:
        if self.status is not None:  # else its dock has gone: nobody to tell
            guarded(slot, self.status)(*args)

    def on_returned(self, result) -> None:
        self.then(result)

    def on_errored(self, err: BaseException | str) -> None:
        report_error(self.status, err)
        if self.failed is not None:
            self.failed()

    def _finished(self, job) -> None:
        _LIGHT.discard(self)
        self.function = self.then = self.failed = self.job = None  # hold no dock once done


def run_light(function: Callable, *args, then: Callable, status, failed=None) -> LightJob:
    """``function(*args)`` in a worker; ``then(result)`` (or ``failed()``) on the GUI thread."""
    return LightJob(function, args, then, status, failed)
