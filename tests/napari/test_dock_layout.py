"""The docks at 1280x800, the smallest screen the plugin is made for (issue 17): the canvas
keeps at least half the window, titles fit their bars, no row scrolls sideways, and the
fine-tune dock shows its progress, status and plot without scrolling while it trains."""

from __future__ import annotations

import pytest
from qtpy.QtCore import QPoint
from qtpy.QtWidgets import QLabel

from wavegms.napari.batch import open_batch_dialog
from wavegms.napari.docking import dock_of

pytestmark = pytest.mark.napari


@pytest.fixture
def small_window(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)  # the test's window; napari has no public size
    qtbot.wait(20)
    return viewer


def canvas_share(viewer) -> float:
    return viewer.window._qt_viewer.canvas.native.width() / viewer.window._qt_window.width()


def bottom_in(form, widget) -> int:
    """Where ``widget`` ends inside the form's scroll area's visible part (its viewport)."""
    return widget.mapTo(form.native.viewport(), QPoint(0, widget.height())).y()


def check_fits(form, title: str) -> None:
    bar = dock_of(form.native).titleBarWidget()
    label = next(x for x in bar.findChildren(QLabel) if x.text() == title)
    assert label.sizeHint().width() <= label.width() + 1, "the title is clipped"
    assert form.content.minimumSizeHint().width() <= form.native.viewport().width() + 1


def test_segment_and_finetune_docked_at_1280x800(small_window, tiny_model, qtbot):
    viewer = small_window
    _, segment = viewer.window.add_plugin_dock_widget("napari-wavegms", "Segment")
    _, finetune = viewer.window.add_plugin_dock_widget("napari-wavegms", "Fine-tune")
    segment.status.value = "done: scan mask (8090 foreground pixels), a two-line message"
    finetune.progress.start("training", epochs=20)
    finetune.plot.add_epoch(1, 0.8, 0.7)  # mid-run: the plot is shown
    qtbot.wait(100)
    assert canvas_share(viewer) >= 0.5
    check_fits(segment, "Segment")
    check_fits(finetune, "Fine-tune")
    status = segment.status.native  # two lines shown whole, not cut by the short dock
    assert status.height() >= 2 * status.fontMetrics().lineSpacing()
    assert bottom_in(segment, status) <= segment.native.viewport().height()
    viewport = finetune.native.viewport().height()
    for shown in (finetune.progress_bar.native, finetune.status.native, finetune.plot):
        assert shown.isVisible() and bottom_in(finetune, shown) <= viewport, shown
    finetune.progress.close()


def test_batch_panel_docked_at_1280x800(small_window, tiny_model, qtbot):
    viewer = small_window
    panel = open_batch_dialog(viewer)
    qtbot.wait(100)
    assert canvas_share(viewer) >= 0.5
    check_fits(panel, "Segment a folder")
