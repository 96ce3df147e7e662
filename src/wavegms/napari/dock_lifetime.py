"""What a dock owns (its loaded model, and with it the graph's runtime session) is freed when
the dock goes: closed with its close button (napari takes the form out of its dock, so the
form's parent becomes None) or destroyed with napari's window. Reopened from the menu, the dock
is a new form that owns new ones.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from qtpy.QtCore import QEvent, QObject


def _call_each(callbacks: tuple[Callable[[], None], ...], _object=None) -> None:
    for callback in callbacks:
        callback()


class DockLifetime(QObject):
    """Calls each of ``callbacks`` (idempotent, e.g. ``slot.close``) when ``widget`` leaves
    its dock or is destroyed. A child of ``widget``: it lives as long as the widget."""

    def __init__(self, widget, *callbacks: Callable[[], None]) -> None:
        super().__init__(widget)
        self.callbacks = callbacks
        self.docked = False
        widget.installEventFilter(self)
        # Not a method of the form: the connection must not keep the form alive.
        widget.destroyed.connect(partial(_call_each, callbacks))

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.ParentChange:
            if watched.parent() is not None:
                self.docked = True
            elif self.docked:  # taken out of its dock: closed
                _call_each(self.callbacks)
        return False
