"""What a form tells the user: errors (status label and notification), progress (a bar and
the status line inside the dock), and the one guard that keeps exceptions out of Qt slots."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable

from magicgui.widgets import Label
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QProgressBar, QSizePolicy

from wavegms.core.errors import WaveGMSError
from wavegms.core.progress import Eta, Progress
from wavegms.napari.jobs import error_text

log = logging.getLogger("wavegms.napari")


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


class StatusLabel(Label):
    """A form's status line: wrapped to the dock's width (a long message never widens the
    dock), at most :attr:`max_lines` lines and :attr:`max_chars` characters shown; the full
    text is its ``value``, its tooltip, and goes to the log."""

    max_chars = 300
    max_lines = 4
    min_lines = 2

    def __init__(self) -> None:
        self._full = ""
        super().__init__(value="")
        label = self.native
        label.setWordWrap(True)
        label.setTextFormat(Qt.TextFormat.PlainText)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        label.setMinimumWidth(40)
        line = label.fontMetrics().lineSpacing()
        label.setMaximumHeight(line * self.max_lines + 6)
        # Two lines kept free: a short dock (Segment) sized before its first message still
        # shows a two-line one whole.
        label.setMinimumHeight(line * self.min_lines + 6)

    @property
    def value(self) -> str:
        return self._full

    @value.setter
    def value(self, text) -> None:
        full = "" if text is None else str(text)
        if full == getattr(self, "_full", None):
            return
        self._full = full
        shown = full if len(full) <= self.max_chars else full[: self.max_chars - 1] + "…"
        self.native.setText(shown)
        self.native.setToolTip(full)
        if full:
            log.info("%s", full)


def eta_text(seconds: float | None) -> str:
    """'about 2 min left' style, or '' when there is no estimate yet."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s left"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min left"
    return f"about {seconds / 3600:.1f} h left"


#: Each stage of long work in the words the user reads (internal names stay internal).
STEP_WORDS = {
    "load": "loading",
    "targets": "preparing the training images",
    "batch": "training",
    "epoch": "epoch",
    "segment": "segmenting",
    "evaluate": "segmenting and scoring",
    "graph": "preparing the fast graph",
    "kfold": "checking the new model",
}
#: Stages whose reports carry their own words (``Progress.message``).
SELF_TOLD = ("load", "graph", "kfold")


def step_text(report: Progress) -> str:
    """One report in plain words, e.g. 'segmenting: 3 of 20'; a stage that says itself (its
    ``message``: loading a model, preparing its graph, a k-fold check) in its own words."""
    if report.stage == "load" and report.total > 1:
        return f"reading the training images: {report.done} of {report.total}"
    words = STEP_WORDS.get(report.stage, report.stage)
    if report.stage in SELF_TOLD:
        return report.message or words
    return f"{words}: {report.done} of {report.total}" if report.total else words


class ProgressDisplay:
    """Renders :class:`Progress` reports in the form: a determinate bar, the step in plain
    words and, for long work, the time left (see :class:`wavegms.core.progress.Eta`)."""

    def __init__(self, label: StatusLabel, bar: QProgressBar) -> None:
        self.label = label
        self.widget = bar
        self.widget.setVisible(False)
        self.bar: QProgressBar | None = None  # the bar while a job runs
        self.last: Progress | None = None
        self.epochs = 0  # a training's planned epochs (0: not a training)
        self.epochs_done = 0
        self.note = ""
        self.clock = time.monotonic
        self.eta = Eta(self.clock)

    def start(self, description: str, epochs: int = 0, note: str = "") -> None:
        """``note``: what the user should know throughout a training (e.g. what judging its
        model will cost), shown after its progress."""
        self.close()
        self.note = note
        self.bar = self.widget
        self.bar.setRange(0, 0)  # busy until the first report says how much there is
        self.bar.setFormat("")
        self.bar.setVisible(True)
        self.last = None
        self.epochs, self.epochs_done = epochs, 0
        self.eta = Eta(self.clock)
        self.label.value = description

    def _fraction(self, report: Progress) -> tuple[float, bool]:
        """How far the whole job is (0-1), and whether it is the part worth a time estimate."""
        part = report.done / report.total if report.total else 0.0
        if self.epochs and report.stage in ("batch", "epoch"):
            if report.stage == "epoch":
                self.epochs_done = report.done
                return report.done / self.epochs, True
            return min(1.0, (self.epochs_done + part) / self.epochs), True
        return part, report.stage in ("segment", "evaluate") and report.total > 1

    def text(self, report: Progress) -> str:
        if self.epochs and report.stage in ("batch", "epoch"):
            epoch = self.epochs_done + (report.stage == "batch")
            words = f"training: epoch {min(epoch, self.epochs)} of {self.epochs}"
            if report.stage == "batch":
                words += f", batch {report.done} of {report.total}"
            dice = report.metrics.get("val_dice")
            if dice is not None:
                words += f" (validation Dice {dice:.3f})"
            return f"{words}; {self.note}" if self.note else words
        return step_text(report)

    def show(self, report: Progress) -> None:
        bar = self.bar
        self.last = report
        if bar is None:  # a report queued before the job ended, delivered after: stale
            return
        fraction, timed = self._fraction(report)
        left = self.eta.update(fraction) if timed else None
        bar.setRange(0, 1000)
        bar.setValue(round(1000 * fraction))
        bar.setFormat(f"{100 * fraction:.0f}%")
        self.label.value = ", ".join(x for x in (self.text(report), eta_text(left)) if x)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.setVisible(False)
            self.bar = None
