"""The docks as a user meets them (issue 17): they keep their width whatever the message, the
pair list survives napari's resets, fine-tuning has a name from the start, closing napari
while training asks, and the training process neither outlives napari nor re-imports the
user's script."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from napari_helpers import disc_mask, speckle
from qtpy.QtGui import QCloseEvent

from wavegms.napari import background, close_guard
from wavegms.napari.batch import open_batch_dialog
from wavegms.napari.finetune import FinetuneWidget
from wavegms.napari.segment import SegmentWidget
from wavegms.training.training_set import TrainingSet

pytestmark = pytest.mark.napari


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def fill_training_set(n: int = 5, size: int = 48) -> None:
    pairs = TrainingSet("default")
    for i in range(n):
        pairs.add(speckle((size, size), seed=i), disc_mask(size, size), source=f"scan {i}")


def test_long_messages_keep_the_docks_width(viewer, tiny_model, qtbot):
    segment, finetune = SegmentWidget(viewer), FinetuneWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment")
    viewer.window.add_dock_widget(finetune, name="Fine-tune")
    batch = open_batch_dialog(viewer)
    qtbot.wait(50)
    long = "error: " + " ".join(f"/a/very/long/path/number/{i}/image.png" for i in range(80))
    for form in (segment, finetune, batch):
        before = form.content.sizeHint().width()
        form.status.value = long
        qtbot.wait(10)
        assert form.content.sizeHint().width() <= before + 2  # wrapped, never wider
        assert form.native.minimumWidth() < 400  # the dock can stay narrow
        assert form.status.value == long and form.status.native.toolTip() == long
        shown = form.status.native.text()
        assert len(shown) < len(long) and shown.endswith("…")  # elided, full text in tooltip
        lines = form.status.native.maximumHeight() // form.status.native.fontMetrics().height()
        assert lines <= 5
    dock = batch.native.parent()
    while dock is not None and not hasattr(dock, "isFloating"):
        dock = dock.parent()
    assert dock is not None and not dock.isFloating()  # docked, not over the menu bar


def test_pair_list_after_opening_and_adding_layers(viewer, tiny_model, qtbot):
    fill_training_set(2)
    widget = FinetuneWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Fine-tune")  # napari resets the choices
    qtbot.wait(20)
    assert list(widget.pairs.choices) == ["scan_0_001", "scan_1_001"]
    viewer.add_image(speckle((16, 16)), name="another")
    viewer.add_labels(np.zeros((16, 16), np.uint8), name="its labels")
    widget.reset_choices()
    assert list(widget.pairs.choices) == ["scan_0_001", "scan_1_001"]


def test_duplicate_and_empty_pairs_are_told(viewer, tiny_model, monkeypatch):
    warned: list[str] = []
    monkeypatch.setattr("wavegms.napari.finetune.show_warning", warned.append)
    widget = FinetuneWidget(viewer)
    image = viewer.add_image(speckle((32, 32)), name="scan")
    labels = viewer.add_labels(disc_mask(32, 32), name="scan mask")
    widget.image.value, widget.labels_layer.value = image, labels
    widget.add_button.native.click()
    widget.add_button.native.click()  # the same pair again
    assert "already in the training set as 'scan_001'" in widget.status.value
    assert TrainingSet("default").names() == ["scan_001"]
    blank = viewer.add_labels(np.zeros((32, 32), np.uint8), name="blank")
    other = viewer.add_image(speckle((32, 32), seed=3), name="other")
    widget.image.value, widget.labels_layer.value = other, blank
    widget.add_button.native.click()
    assert "empty" in widget.status.value and warned and "empty" in warned[-1]


def test_default_model_name_is_free(viewer, tiny_model):
    from wavegms.store.paths import user_models_dir

    for suffix in (".safetensors", ".json"):
        (user_models_dir() / f"default-ft1{suffix}").write_text("{}")
    widget = FinetuneWidget(viewer)
    assert widget.new_name.value == "default-ft2"


def _start_training(viewer, qtbot, epochs: int = 200, docked: bool = False) -> FinetuneWidget:
    fill_training_set()
    widget = FinetuneWidget(viewer)
    if docked:
        viewer.window.add_dock_widget(widget, name="Fine-tune")
    widget.base_model.value = "tiny"
    widget.epochs.value, widget.batch_size.value = epochs, 2
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: len(widget.plot.epochs) > 0, timeout=120_000)
    return widget


def _told_when_done(job, qtbot, told: list[str]) -> None:
    """The background run ends; napari is told, the model is listed, the run folder says so."""
    from wavegms.napari.finetune_job import LOG_NAME
    from wavegms.store.catalogue import list_models

    try:
        assert job.process.wait(120) == 0
        qtbot.waitUntil(lambda: job.form not in background.WATCHED, timeout=10_000)
    finally:
        if job.process.poll() is None:
            job.process.kill()
    assert "default-ft1" not in list_models()  # installed only once reviewed (issue 25)
    done = [t for t in told if t.startswith("background fine-tune done: new model 'default-ft1'")]
    assert done and "not installed until you review it" in done[0], told
    from wavegms.store.reservations import FINISHED, open_runs

    assert [(r.name, r.state) for r in open_runs()] == [("default-ft1", FINISHED)]
    run_dir = Path(job.form.log).parent
    log = (run_dir / LOG_NAME).read_text()
    assert "goes on in the background" in log
    *_, end, told_line = log.splitlines()
    assert "done: model 'default-ft1' ready from epoch" in end
    assert told_line.endswith(background.TOLD)  # not told again by the next dock opened


@pytest.fixture
def told(monkeypatch) -> list[str]:
    """napari notifications about background runs."""
    shown: list[str] = []
    monkeypatch.setattr(background, "show_info", shown.append)
    monkeypatch.setattr(background, "show_warning", shown.append)
    monkeypatch.setattr("wavegms.napari.finetune.show_info", shown.append)
    return shown


def test_keep_training_in_the_background(viewer, tiny_model, qtbot, monkeypatch, told):
    widget = _start_training(viewer, qtbot, epochs=2)
    job = widget.job
    monkeypatch.setattr(FinetuneWidget, "ask_on_close", lambda _self: close_guard.BACKGROUND)
    assert not widget.close_guard.eventFilter(None, QCloseEvent())
    assert not widget.busy  # the form let go; the child goes on and installs its model
    assert "goes on in the background" in told[0]
    assert widget.new_name.value == "default-ft2"  # the next run cannot take its name
    _told_when_done(job, qtbot, told)


def test_closing_the_dock_keeps_training_and_tells_when_done(viewer, tiny_model, qtbot, told):
    widget = _start_training(viewer, qtbot, epochs=2, docked=True)
    job = widget.job
    viewer.window.remove_dock_widget(widget.native)  # napari's close button on the dock
    assert not widget.busy and job.alive
    _told_when_done(job, qtbot, told)


def test_a_run_that_ended_while_napari_was_closed_is_told_once(viewer, tiny_model, told):
    from wavegms.napari.finetune_job import log_line
    from wavegms.store.paths import runs_dir

    run = runs_dir() / "finetune-lesions-ft1-20260101-120000"
    log_line(run, "started: fine-tuning 'lesions-ft1' from 'tiny'")
    log_line(run, "goes on in the background (the dock or napari was closed)")
    log_line(run, "done: model 'lesions-ft1' installed from epoch 4 of 20")
    quiet = runs_dir() / "finetune-other-20260101-120000"  # never sent away: nothing to tell
    log_line(quiet, "done: model 'other' installed from epoch 2 of 2")
    widget = FinetuneWidget(viewer)
    assert "ended: done: model 'lesions-ft1' installed from epoch 4" in widget.status.value
    assert len(told) == 1 and "lesions-ft1" in told[0]
    FinetuneWidget(viewer)  # the next dock opened does not tell it again
    assert len(told) == 1


PARENT = """
import sys, time
with open(sys.argv[1], "a") as f:  # a user's script without a __main__ guard
    f.write("imported\\n")
from wavegms.napari.finetune_job import launch
from wavegms.training.finetune import FinetuneRequest
child = launch(FinetuneRequest(data_dir=sys.argv[2], base_model="tiny", new_name="orphan",
                               out_dir=sys.argv[3], device="cpu", epochs=1000, batch_size=2))
print(child.pid, flush=True)
time.sleep(600)
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state


def test_the_child_dies_with_its_parent_and_never_imports_its_script(tiny_model, tmp_path):
    fill_training_set()
    script, marker = tmp_path / "user_script.py", tmp_path / "imports.txt"
    script.write_text(PARENT)
    root = str(TrainingSet("default").root)
    parent = subprocess.Popen(
        [sys.executable, str(script), str(marker), root, str(tmp_path / "run")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        child = int(parent.stdout.readline())
        time.sleep(1.0)
        os.kill(parent.pid, signal.SIGKILL)  # napari killed
        parent.wait(10)
        deadline = time.monotonic() + 90
        while _running(child) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _running(child), "the training process outlived its parent"
    finally:
        parent.kill()
    assert marker.read_text() == "imported\n"  # the user's script ran once: in the parent


def test_progress_in_plain_words_with_time_left(viewer, tiny_model):
    from wavegms.core.progress import Progress

    widget = FinetuneWidget(viewer)
    display, now = widget.progress, [0.0]
    display.clock = lambda: now[0]
    display.start("starting", epochs=4)
    display.show(Progress("targets", 2, 10, "encoding frozen targets"))
    assert widget.status.value == "preparing the training images: 2 of 10"
    assert "frozen" not in widget.status.value
    display.show(Progress("batch", 1, 2))
    now[0] = 30.0
    display.show(Progress("epoch", 1, 4, metrics={"loss": 0.5, "val_dice": 0.61}))
    assert widget.status.value.startswith("training: epoch 1 of 4 (validation Dice 0.610)")
    # from half of epoch 1 to its end (1/8 of the run) in 30 s: 3/4 left take 3 min
    assert widget.status.value.endswith("about 3 min left")
    assert widget.progress_bar.native.value() == 250
    display.close()
