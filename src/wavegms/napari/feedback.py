"""What a form tells the user: errors (status label and notification), progress (napari's
progress bar and the status label), and the one guard that keeps exceptions out of Qt slots."""

from __future__ import annotations

import traceback
from collections.abc import Callable

from magicgui.widgets import Label
from napari.utils import progress as napari_progress
from napari.utils.notifications import show_error

from wavegms.core.errors import WaveGMSError
from wavegms.core.progress import Progress
from wavegms.napari.jobs import error_text


def report_error(label: Label, err: BaseException | str) -> None:
    """Show an error in the form's status label and as a napari notification.

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


def guarded(slot: Callable, label: Label) -> Callable:
    """``slot`` as a Qt slot that shows any exception in ``label`` instead of raising it."""

    def guarded_slot(*args) -> None:
        try:
            slot(*args)
        except Exception as err:
            report_error(label, err)

    return guarded_slot


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
