"""The fine-tune dock: collecting pairs on disk, errors, training in a child process, Stop."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time

import numpy as np
import pytest
from napari_helpers import disc_mask, speckle, wait_idle
from qtpy.QtGui import QCloseEvent

from wavegms.napari import close_guard
from wavegms.napari.finetune import FinetuneWidget
from wavegms.napari.segment import SegmentWidget
from wavegms.napari.settings import blank_request
from wavegms.training.finetune import FinetuneRequest
from wavegms.training.training_set import TrainingSet

pytestmark = pytest.mark.napari


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture
def dock(viewer, tiny_model):
    """A fine-tune dock whose training process is ended after the test, whatever happens."""
    widget = FinetuneWidget(viewer)
    yield widget
    widget.shutdown()


def add_pairs(viewer, widget: FinetuneWidget, n: int = 5, size: int = 64) -> None:
    for i in range(n):
        image = viewer.add_image(speckle((size, size), seed=i), name=f"scan {i}")
        labels = viewer.add_labels(disc_mask(size, size) * 2, name=f"scan {i} mask")
        widget.image.value, widget.labels_layer.value = image, labels
        widget.add_button.native.click()


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_add_and_remove_pairs(viewer, tiny_model, wavegms_home):
    widget = FinetuneWidget(viewer)
    assert widget.project.value == "default"
    add_pairs(viewer, widget, 2, size=40)
    root = wavegms_home / "data" / "finetune" / "default"
    manifest = json.loads((root / "manifest.json").read_text())
    names = [p["name"] for p in manifest["pairs"]]
    assert names == ["scan_0_001", "scan_1_001"] and list(widget.pairs.choices) == names
    assert manifest["pairs"][0]["source"] == "scan 0"
    from wavegms.data.images import read_image
    from wavegms.data.masks import read_mask

    assert read_image(root / "images" / "scan_0_001.png").shape == (40, 40)
    mask = read_mask(root / "masks" / "scan_0_001.png")
    np.testing.assert_array_equal(mask, disc_mask(40, 40) > 0)  # any label > 0 is lesion

    widget.pairs.value = ["scan_0_001"]
    widget.remove_button.native.click()
    assert list(widget.pairs.choices) == ["scan_1_001"]
    assert not (root / "images" / "scan_0_001.png").exists()
    assert TrainingSet("default").names() == ["scan_1_001"]
    # a new dock (e.g. after restarting napari) finds the collected pairs
    assert list(FinetuneWidget(viewer).pairs.choices) == ["scan_1_001"]


def test_stack_adds_the_shown_slice(viewer, tiny_model):
    widget = FinetuneWidget(viewer)
    stack = viewer.add_image(np.stack([speckle((24, 24), seed=i) for i in range(3)]), name="vol")
    labels = viewer.add_labels(np.zeros((3, 24, 24), np.uint8), name="vol labels")
    labels.data[2, 5:10, 5:10] = 1
    viewer.dims.set_current_step(0, 2)
    widget.image.value, widget.labels_layer.value = stack, labels
    widget.add_button.native.click()
    (entry,) = TrainingSet("default").entries()
    assert (entry.height, entry.width, entry.mask_area) == (24, 24, 25)


def test_bad_input_is_reported(viewer, tiny_model, shown_errors, qtbot):
    widget = FinetuneWidget(viewer)
    widget.add_button.native.click()
    assert "choose an image layer" in widget.status.value
    image = viewer.add_image(speckle((32, 32)), name="img")
    labels = viewer.add_labels(np.zeros((20, 32), np.uint8), name="wrong")
    widget.image.value, widget.labels_layer.value = image, labels
    widget.add_button.native.click()
    assert "differ in size" in widget.status.value
    assert TrainingSet("default").names() == []

    widget.new_name.value = "mine"
    widget.run_button.native.click()  # empty training set: refused by the worker preparing it
    qtbot.waitUntil(lambda: "has 0 pair(s)" in widget.status.value, timeout=30_000)
    assert not widget.busy and widget.run_button.enabled
    add_pairs(viewer, widget)
    widget.new_name.value = "tiny"  # an existing model is never overwritten
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: "already exists" in widget.status.value, timeout=30_000)
    assert not widget.busy
    widget.new_name.value = "bad/name"
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: "not a usable model name" in widget.status.value, timeout=30_000)
    assert not widget.busy
    assert len(shown_errors) == 5


def test_finetune_makes_a_new_model(viewer, dock, tiny_model, qtbot, monkeypatch):
    from wavegms.inference import adoption
    from wavegms.store.catalogue import list_models
    from wavegms.store.paths import user_models_dir

    def scores(model, root, names, *args, **kwargs):  # the fold models score lower
        return [80.0 if model == "tiny" else 60.0] * len(names)

    monkeypatch.setattr(adoption, "pair_dsc", scores)

    base = user_models_dir() / "tiny.safetensors"
    before = digest(base)
    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment")
    widget = dock
    add_pairs(viewer, widget)
    widget.base_model.value = "tiny"
    widget.epochs.value, widget.batch_size.value = 1, 2
    widget.augment.value = False
    assert widget.new_name.value == "default-ft1"  # filled in: the defaults run as they are
    widget.run_button.native.click()
    assert not widget.run_button.enabled  # preparing (name reserved, pairs copied), then busy
    qtbot.waitUntil(lambda: widget.busy, timeout=60_000)
    note = [widget.progress.note]  # shown with the training's progress
    wait_idle(qtbot, widget, "busy")
    # 5 pairs: trained on all, judged by a 3-fold check (its cost said from the start);
    # scores made worse here, so that the dock asks
    assert widget.adoption.asking and "is not better" in widget.adoption.text.value
    assert "3-fold check on all 5 accepted pairs" in widget.adoption.text.value
    assert "3 more fine-tunes" in note[0]
    assert "default-ft1" not in list_models()  # nothing installed on its own
    widget.adoption.adopt_button.native.click()
    qtbot.waitUntil(lambda: "default-ft1" in list_models(), timeout=60_000)
    qtbot.waitUntil(lambda: "installed and selected" in widget.status.value, timeout=60_000)
    assert widget.status.value.startswith("done"), widget.status.value
    outcome = widget.outcome  # what the library reported, shown in the status line
    assert outcome["best_epoch"] == 1 and outcome["val_images"] == 3  # never one image
    assert "'default-ft1' from epoch 1 of 1 (of 1 planned)" in widget.status.value
    assert "on 3 image(s) held out of 5" in widget.status.value
    assert widget.plot.chosen == 1 and widget.plot.val_images == 3  # marked in the plot
    assert widget.new_name.value == "default-ft2"  # the next run gets a free name
    assert "default-ft1" in list_models()
    config = json.loads((user_models_dir() / "default-ft1.json").read_text())
    assert config["metadata"]["config"]["init_model"].endswith("tiny.safetensors")
    # The fast CPU schedule: targets cached once (no augmentation: one view), no decoder.
    assert config["metadata"]["config"]["seg_heads"] == []
    assert config["metadata"]["config"]["cached_views"] == 1
    assert digest(base) == before  # the base model is untouched
    assert widget.plot.epochs == [1] and 0 <= widget.plot.dices[0] <= 1
    assert segment.model.value == "default-ft1"  # selected in the Segment widget
    assert (widget.run_dir / "best.safetensors").is_file()


def test_the_plot_draws_dice_at_validated_epochs_only(qtbot):
    from wavegms.napari.plot import LossPlot

    plot = LossPlot()
    qtbot.addWidget(plot)
    for epoch, dice in ((1, 0.2), (2, None), (3, None), (4, 0.5)):  # val_every 3
        plot.add_epoch(epoch, 1.0 / epoch, dice)
    assert plot.epochs == [1, 2, 3, 4] and plot.dice_epochs == [1, 4]
    assert plot.best_epoch == 4
    assert list(plot.dice_axes.lines[0].get_xdata()) == [1, 4]  # no Dice drawn for 2 and 3
    assert list(plot.loss_axes.lines[0].get_xdata()) == [1, 2, 3, 4]


def test_stop_keeps_the_last_good_epoch(viewer, dock, tiny_model, qtbot, monkeypatch):
    from wavegms.store.catalogue import list_models

    widget = dock
    add_pairs(viewer, widget)
    widget.base_model.value = "tiny"
    widget.epochs.value, widget.batch_size.value = 50, 2
    widget.new_name.value = "stopped"
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: "left" in widget.status.value, timeout=120_000)  # time estimate
    assert widget.status.value.startswith("training: epoch")
    assert 0 < widget.progress_bar.native.value() < 1000  # determinate, part-way
    # Closing napari asks; "don't close" leaves the training alone, "stop" is the Stop button
    # followed by waiting for the best epoch to be installed before the window goes.
    monkeypatch.setattr(FinetuneWidget, "ask_on_close", lambda _self: close_guard.STAY)
    event = QCloseEvent()
    assert widget.close_guard.eventFilter(None, event) and not event.isAccepted() and widget.busy
    monkeypatch.setattr(FinetuneWidget, "ask_on_close", lambda _self: close_guard.STOP)
    started = time.monotonic()
    assert not widget.close_guard.eventFilter(None, QCloseEvent())  # the window may close now
    # the next batch, then installing: no forced-termination timeout (it was 15 s)
    assert time.monotonic() - started < 8, "Stop waited for something other than a batch"
    assert not widget.busy, widget.status.value
    # Stopped early: its best validated checkpoint is offered, nothing installed on its own.
    assert widget.adoption.asking and "stopped early" in widget.adoption.text.value
    assert "stopped" not in list_models()
    assert len(widget.plot.epochs) < 50
    widget.adoption.adopt_button.native.click()  # the user takes it
    qtbot.waitUntil(lambda: "stopped" in list_models(), timeout=60_000)


def test_settings_persist(viewer, tiny_model):
    widget = FinetuneWidget(viewer)
    # The form's fields are FinetuneRequest's, starting from its defaults.
    fresh = dataclasses.replace(
        widget.form_request(), base_model="", device="auto", new_name=""
    )  # the name is filled in per run, never saved
    assert fresh == blank_request()
    assert set(widget.fields) <= {f.name for f in dataclasses.fields(FinetuneRequest)}
    widget.project.value = "liver"
    widget.epochs.value, widget.lr.value, widget.val_fraction.value = 7, 0.0005, 0.3
    widget.augment.value = widget.fast_cpu.value = False
    widget.base_model.value = "tiny"
    again = FinetuneWidget(viewer)
    assert again.project.value == "liver" and again.base_model.value == "tiny"
    assert (again.epochs.value, again.lr.value, again.val_fraction.value) == (7, 0.0005, 0.3)
    assert again.augment.value is False and again.fast_cpu.value is False


def test_child_error_is_shown(viewer, dock, qtbot, shown_errors):
    from wavegms.store.paths import user_models_dir

    (user_models_dir() / "broken.safetensors").write_bytes(b"junk")
    (user_models_dir() / "broken.json").write_text("{}")
    dock.reset_choices()
    add_pairs(viewer, dock)
    dock.base_model.value = "broken"
    dock.new_name.value = "never"
    dock.run_button.native.click()
    qtbot.waitUntil(lambda: "fine-tuning failed" in dock.status.value, timeout=120_000)
    wait_idle(qtbot, dock, "busy")
    assert "broken" in dock.status.value
    assert shown_errors and not (user_models_dir() / "never.json").exists()


def test_typing_a_project_name(viewer, tiny_model, qtbot, shown_errors, monkeypatch):
    """Typed key by key, a project name is taken (pairs listed, settings saved) once the
    user presses Return: no error for the half-typed (even empty) name, one settings write."""
    from qtpy.QtCore import Qt

    from wavegms.napari import settings

    TrainingSet("liver-2").add(speckle((16, 16)), disc_mask(16, 16), source="scan")
    widget = FinetuneWidget(viewer)
    writes = []
    real_write = settings.write_json
    monkeypatch.setattr(settings, "write_json", lambda *a: writes.append(a) or real_write(*a))
    line = widget.project.native
    qtbot.keyClick(line, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(line, Qt.Key.Key_Backspace)
    assert widget.project.value == ""  # no project name at all, for a moment
    qtbot.keyClicks(line, "liver-2")
    assert widget.project.value == "liver-2" and list(widget.pairs.choices) == []
    assert writes == [] and shown_errors == []
    qtbot.keyClick(line, Qt.Key.Key_Return)
    assert list(widget.pairs.choices) == ["scan_001"]
    assert len(writes) == 1 and writes[0][1]["finetune"]["project"] == "liver-2"
    assert shown_errors == [] and "Error" not in widget.status.value
