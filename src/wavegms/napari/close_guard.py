"""What happens to a fine-tune when napari's window is closed while it trains: the user is
asked, then either training stops at the next batch and the best completed epoch is installed
before the window closes, or it keeps training in the background (the child installs its
model when done: a notification says so while napari runs, the run folder's ``training.log``
always), or the window stays open. Closing only the dock (napari's close button cannot be
refused) keeps the training in the background the same way.

Without a question (napari killed), the child sees its pipe end and stops at the next batch
by itself, installing the best completed epoch (``finetune_job``).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QApplication, QMessageBox

STOP, BACKGROUND, STAY = "stop", "background", "stay"


class TrainingForm(Protocol):
    """What the guard needs of the form it guards (the fine-tune dock), named here so that
    this module does not import the dock that imports it."""

    native: Any
    request: Any  # its ``new_name`` is the model being made
    busy: bool

    def ask_on_close(self) -> str: ...
    def leave_in_background(self) -> None: ...
    def stop_and_wait(self, seconds: float) -> None: ...


#: How long closing waits for the stopped run to install its best epoch.
STOP_WAIT_S = 120.0


def ask_on_close(form: TrainingForm) -> str:
    """Ask what to do with the running fine-tune: STOP, BACKGROUND or STAY."""
    box = QMessageBox(form.native)
    box.setWindowTitle("Fine-tuning is running")
    box.setText(
        f"Fine-tuning {form.request.new_name!r} is still running.\n\nStop it now and keep the "
        "best completed epoch as the new model, or keep training in the background (the model "
        "appears in the model list when it is done)?"
    )
    stop = box.addButton("Stop and keep the best epoch", QMessageBox.ButtonRole.AcceptRole)
    background = box.addButton("Keep training in the background", QMessageBox.ButtonRole.NoRole)
    box.addButton("Don't close", QMessageBox.ButtonRole.RejectRole)
    box.exec()
    clicked = box.clickedButton()
    return STOP if clicked is stop else BACKGROUND if clicked is background else STAY


class CloseGuard(QObject):
    """An event filter on napari's main window that asks before a running fine-tune is
    left behind. The window is the form's own top-level window, watched from the moment
    training starts (napari's private window attribute is not for plugins)."""

    def __init__(self, form: TrainingForm) -> None:
        super().__init__()
        self.form = form
        self.window = None
        form.native.installEventFilter(self)  # napari takes a closed dock's widget out

    def watch(self, window) -> None:
        if window is not None and window is not self.window:
            if self.window is not None:
                self.window.removeEventFilter(self)
            window.installEventFilter(self)
            self.window = window

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.ParentChange and watched is self.form.native:
            if watched.parent() is None and self.form.busy:  # its dock was closed
                self.form.leave_in_background()
            return False
        if event.type() != QEvent.Type.Close:
            return False
        try:
            busy = self.form.busy
        except RuntimeError:  # the form's widgets are gone already
            return False
        if not busy:
            return False
        choice = self.form.ask_on_close()
        if choice == STAY:
            event.ignore()
            return True
        if choice == BACKGROUND:
            self.form.leave_in_background()
        else:
            self.form.stop_and_wait(STOP_WAIT_S)
        return False


def wait_until_idle(form: TrainingForm, seconds: float) -> bool:
    """Process events (the job's timer included) until the form is idle; False on timeout."""
    end = time.monotonic() + seconds
    while form.busy and time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)
    return not form.busy
