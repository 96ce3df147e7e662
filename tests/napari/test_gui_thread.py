"""Nothing heavy on napari's GUI thread: building the plugin's widgets imports no torch, and
torch is imported only by worker threads (the Segment widget's warm-up, the device list)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.napari

# Run in a fresh interpreter: in the test process torch is long imported.
BUILD_EVERY_WIDGET = """
import sys, threading, time
import importlib.abc

imported_by = []  # the thread that first looked for torch

class Spy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not imported_by:
            imported_by.append(threading.current_thread())
        return None

sys.meta_path.insert(0, Spy())

import napari
from qtpy.QtWidgets import QApplication

from wavegms.napari.batch import open_batch_dialog
from wavegms.napari.finetune import FinetuneWidget
from wavegms.napari.review import ReviewWidget
from wavegms.napari.segment import SegmentWidget

viewer = napari.Viewer(show=False)
viewer.open_sample("napari-wavegms", "ultrasound")  # the sample data contribution
segment = SegmentWidget(viewer)
viewer.window.add_dock_widget(segment, name="Segment")
viewer.window.add_dock_widget(FinetuneWidget(viewer), name="Fine-tune")
viewer.window.add_dock_widget(ReviewWidget(viewer), name="Review results")
open_batch_dialog(viewer)
assert "torch" not in sys.modules, "building a widget imported torch"

deadline = time.monotonic() + 120  # then the event loop runs: the warm-up loads the model
while segment.loaded is None and time.monotonic() < deadline:
    QApplication.processEvents()
    time.sleep(0.02)
assert segment.loaded is not None, "the warm-up never loaded the model"
assert imported_by and imported_by[0] is not threading.main_thread(), imported_by
viewer.close()
print("ok")
"""


def test_widgets_import_torch_only_in_workers(qtbot, tiny_model):
    # qtbot: skipped like the other GUI tests where Qt cannot start; the X server that
    # pytest-xvfb started is inherited through DISPLAY.
    run = subprocess.run(
        [sys.executable, "-c", BUILD_EVERY_WIDGET], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]
