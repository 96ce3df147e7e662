"""How a form sits in napari's dock area: a width that leaves the canvas at least half the
window at 1280 px, a title that fits its title bar, and job rows without a label column.

Only Qt's public API is used (the dock is the form's ``QDockWidget`` ancestor, its main window
the dock's parent); napari's private attributes are not for plugins.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QDockWidget, QLabel, QMainWindow, QWidget

#: The width a form's dock is given when docked: at 1280 px napari's layer docks take about
#: 330 px, so that a right dock of 280 px leaves the canvas just over half the window.
DOCK_WIDTH = 280


def dock_of(widget: QWidget) -> QDockWidget | None:
    """The dock holding ``widget``, or None while it is not docked."""
    parent = widget.parent()
    while parent is not None and not isinstance(parent, QDockWidget):
        parent = parent.parent()
    return parent


def fit_dock(widget: QWidget, title: str, width: int = DOCK_WIDTH) -> None:
    """Give ``widget``'s dock ``width`` (never under its minimum) and the short ``title``."""
    dock = dock_of(widget)
    if dock is None:
        return
    window = dock.parent()
    if isinstance(window, QMainWindow) and not dock.isFloating():
        width = max(width, dock.minimumSizeHint().width(), widget.minimumWidth())
        window.resizeDocks([dock], [width], Qt.Orientation.Horizontal)
    if title:
        show_title(dock, title)
        # napari rebuilds the title bar (with its long name) when the dock floats or docks
        dock.topLevelChanged.connect(lambda _floating: show_title(dock, title))


def show_title(dock: QDockWidget, title: str) -> None:
    """Show ``title`` in the dock's title bar instead of napari's "<name> (<plugin>)", which
    the bar clipped; the full name stays in the tooltip."""
    bar = dock.titleBarWidget()
    if bar is None:  # Qt's own title bar shows the window title
        dock.setWindowTitle(title)
        return
    for label in bar.findChildren(QLabel):
        if label.text() == dock.windowTitle():
            label.setToolTip(label.text())
            label.setText(title)


def unlabel(row_widget: QWidget) -> None:
    """Hide the empty label column of a magicgui row (buttons, progress bar, status line), so
    that the row has the dock's whole width."""
    row = row_widget.parentWidget()
    layout = row.layout() if row is not None else None
    if layout is None or layout.count() < 2:
        return
    first = layout.itemAt(0).widget()
    if isinstance(first, QLabel) and first is not row_widget and not first.text():
        first.hide()
