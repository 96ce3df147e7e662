"""The GUI thread only draws: a QTimer ticking every 50 ms keeps ticking while the user
segments a 4096x4096 layer, accepts a mask, opens a review of 500 rows and starts a
fine-tune. The largest gap between two ticks during each action is at most 200 ms.

Measured under load (the machine's other work shares its cores); the gaps are printed
(``-s``) so that a note can quote them.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from napari_helpers import speckle

from wavegms.core.files import write_png

pytestmark = pytest.mark.napari

TICK_MS = 50
LIMIT_S = 0.200
WAIT_MS = 240_000


class Heartbeat:
    """A 50 ms QTimer on the GUI thread; the largest gap between its ticks since reset."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()
        self.largest = 0.0
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.largest = max(self.largest, now - self.last)
        self.last = now

    def reset(self) -> None:
        self.last, self.largest = time.perf_counter(), 0.0

    def gap(self) -> float:
        """The largest gap so far, counting the time since the last tick."""
        return max(self.largest, time.perf_counter() - self.last)


def _review_folder(root, rows: int):
    """A results folder of ``rows`` images as a batch run leaves it (small images)."""
    from wavegms.inference.folder_outputs import IMAGE_COLUMNS, csv_text, output_paths

    images, out = root / "images", root / "out"
    table = []
    for i in range(rows):
        name = f"scan{i:03d}"
        write_png(images / f"{name}.png", speckle((32, 32), seed=i))
        mask_path, soft_path = output_paths(out, name)
        write_png(mask_path, speckle((32, 32), seed=i) > 128)
        write_png(soft_path, speckle((32, 32), seed=i).astype(np.float32) / 255)
        row = dict.fromkeys(IMAGE_COLUMNS)
        row.update(name=name, file=f"{name}.png", height=32, width=32, mask_area=100)
        row["uncertainty"] = (i * 7919 % 1000) / 1000
        table.append(row)
    (out / "results.csv").write_text(csv_text(table, {}, False))
    return images, out


def test_the_gui_thread_keeps_ticking(make_napari_viewer, tiny_model, qtbot, tmp_path):
    from wavegms.napari.finetune import FinetuneWidget
    from wavegms.napari.review import ReviewWidget
    from wavegms.napari.review_jobs import MASK
    from wavegms.napari.segment import SegmentWidget
    from wavegms.napari.settings import FinetuneSettings, blank_request, save_settings

    request = dataclasses.replace(blank_request(), epochs=1, batch_size=2, augment=False)
    save_settings(FinetuneSettings(project="beat", request=request))
    images, out = _review_folder(tmp_path, 500)
    viewer = make_napari_viewer()
    segment, finetune, review = (
        SegmentWidget(viewer), FinetuneWidget(viewer), ReviewWidget(viewer)
    )  # fmt: skip
    qtbot.waitUntil(lambda: segment.loaded is not None, timeout=WAIT_MS)  # warmed up
    beat, gaps = Heartbeat(), {}

    big = viewer.add_image(speckle((4096, 4096), seed=1), name="big")
    segment.image.value = big
    qtbot.wait(200)
    beat.reset()
    segment.run_button.native.click()
    qtbot.waitUntil(lambda: not segment.busy, timeout=WAIT_MS)
    qtbot.wait(200)
    gaps["segment 4096x4096"] = beat.gap()
    assert "big mask" in viewer.layers, segment.status.value

    review.out_dir.value, review.images_dir.value = out, images
    review.model.value = "tiny"
    beat.reset()
    review.open_button.native.click()
    qtbot.waitUntil(lambda: review.current is not None, timeout=WAIT_MS)
    qtbot.wait(200)
    gaps["open a review of 500 rows"] = beat.gap()

    first = review.current
    viewer.layers[MASK].data = np.ones((32, 32), np.uint8)
    beat.reset()
    review.accept_button.native.click()
    qtbot.waitUntil(lambda: review.current not in (None, first), timeout=WAIT_MS)
    qtbot.wait(200)
    gaps["accept"] = beat.gap()

    from wavegms.training.training_set import TrainingSet

    pairs = TrainingSet("beat")
    for i in range(6):
        pairs.add(speckle((48, 48), seed=i), speckle((48, 48), seed=i) > 128, f"p{i}")
    finetune.project.value = "beat"
    finetune.refresh_pairs()
    beat.reset()
    finetune.run_button.native.click()
    qtbot.waitUntil(lambda: finetune.busy, timeout=WAIT_MS)
    qtbot.wait(1000)
    gaps["start a fine-tune"] = beat.gap()
    finetune.shutdown()
    review.shutdown()

    for action, gap in gaps.items():
        print(f"heartbeat: largest gap while {action}: {1000 * gap:.0f} ms")
    assert max(gaps.values()) <= LIMIT_S, gaps
