"""Reliability of the napari widgets: wrong layers, odd images, double clicks, layers changed
while the model runs. Cases are listed in docs/reliability.md (see tests/reliability)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from napari.layers import Labels
from napari_helpers import disc_mask, speckle, wait_idle

from reliability.cases import case
from wavegms.napari import segment as segment_module
from wavegms.napari.finetune import FinetuneWidget
from wavegms.napari.segment import SegmentWidget
from wavegms.training.training_set import TrainingSet

pytestmark = pytest.mark.napari


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


class Gate:
    """Holds the Segment widget's job at its start until ``open()``, so that a test can act
    while the model 'runs'; counts the jobs started."""

    def __init__(self, monkeypatch) -> None:
        self.event = threading.Event()
        self.jobs = 0
        real = segment_module.segment_job

        def gated(*args, **kwargs):
            self.jobs += 1
            assert self.event.wait(60), "the test never opened the gate"
            return real(*args, **kwargs)

        monkeypatch.setattr(segment_module, "segment_job", gated)

    def open(self) -> None:
        self.event.set()


def masks_of(viewer) -> list[str]:
    return [layer.name for layer in viewer.layers if isinstance(layer, Labels)]


@case(
    "GUI-WRONG-LAYER",
    "A Labels or a Points layer chosen in the Segment widget where an image is expected",
    "Error shown in the widget and as a notification; no job starts; no layer is added",
)
def test_labels_or_points_chosen_as_the_image(viewer, tiny_model, shown_errors, monkeypatch):
    gate = Gate(monkeypatch)
    labels = viewer.add_labels(np.zeros((16, 16), np.uint8), name="labels")
    points = viewer.add_points(np.array([[1.0, 2.0], [3.0, 4.0]]), name="points")
    widget = SegmentWidget(viewer)
    for layer in (labels, points):
        widget.image.choices = [(layer.name, layer)]  # e.g. a stale or scripted choice
        widget.image.value = layer
        widget.run_button.native.click()
        assert not widget.busy and "no image layer chosen" in widget.status.value
    assert gate.jobs == 0 and len(shown_errors) == 2
    assert [layer.name for layer in viewer.layers] == ["labels", "points"]


@case(
    "GUI-FT-WRONG-LAYER",
    "In the fine-tune dock, a Labels layer chosen as the image, then a Points layer as the labels",
    "Error shown for each; nothing is written to the training set",
)
def test_finetune_dock_with_wrong_layers(viewer, tiny_model, shown_errors):
    image = viewer.add_image(speckle((16, 16)), name="scan")
    labels = viewer.add_labels(disc_mask(16, 16), name="labels")
    points = viewer.add_points(np.array([[1.0, 2.0]]), name="points")
    dock = FinetuneWidget(viewer)
    dock.image.choices = [("labels", labels)]
    dock.image.value = labels
    dock.add_button.native.click()
    assert "choose an image layer" in dock.status.value
    dock.image.choices = [("scan", image)]
    dock.image.value = image
    dock.labels_layer.choices = [("points", points)]
    dock.labels_layer.value = points
    dock.add_button.native.click()
    assert "choose the labels layer" in dock.status.value
    assert len(shown_errors) == 2 and not TrainingSet("default").root.exists()


NAN_IMAGE = np.where(disc_mask(20, 24) > 0, np.nan, speckle((20, 24), dtype=float))
IMAGES = {  # name: (layer data, rgb, expected labels shape)
    "one pixel": (np.array([[120]], np.uint8), False, (1, 1)),
    "eight": (speckle((8, 8)), False, (8, 8)),
    "with nan": (NAN_IMAGE, False, (20, 24)),
    "constant": (np.full((20, 24), 700, np.uint16), False, (20, 24)),
    "bool": (disc_mask(20, 24) > 0, False, (20, 24)),
    "5d": (speckle((2, 1, 2, 12, 14)), False, (2, 1, 2, 12, 14)),
}


@case(
    "GUI-IMAGE-KINDS",
    "Segment on image layers that are 1x1, 8x8, float with NaN, constant uint16, bool, 5D",
    "One labels layer per image, shaped like the image (without colour), values 0/1",
)
def test_odd_image_layers(viewer, tiny_model, qtbot, shown_errors):
    widget = SegmentWidget(viewer)
    for name, (data, rgb, expected) in IMAGES.items():
        layer = viewer.add_image(data, name=name, rgb=rgb)
        widget.image.value = layer
        widget.run_button.native.click()
        wait_idle(qtbot, widget)
        assert widget.status.value.startswith("done"), (name, widget.status.value)
        mask = viewer.layers[f"{name} mask"]
        assert mask.data.shape == expected and set(np.unique(mask.data)) <= {0, 1}, name
    assert shown_errors == []


@case(
    "GUI-WORKER-ERROR",
    "An error inside the worker thread (masks too large for the free memory, simulated)",
    "The error is shown, no layer is added, the widget is ready again and the next Segment works",
)
def test_error_in_the_worker(viewer, tiny_model, qtbot, shown_errors, monkeypatch):
    from wavegms.data import preprocess

    monkeypatch.setattr(preprocess, "_available_memory", lambda: 1000)
    image = viewer.add_image(speckle((32, 32)), name="scan")
    widget = SegmentWidget(viewer)
    widget.run_button.native.click()
    wait_idle(qtbot, widget)
    assert "would need" in widget.status.value and shown_errors
    assert masks_of(viewer) == [] and widget.run_button.enabled
    monkeypatch.setattr(preprocess, "_available_memory", lambda: None)
    widget.image.value = image
    widget.run_button.native.click()
    wait_idle(qtbot, widget)
    assert masks_of(viewer) == ["scan mask"]


@case(
    "GUI-DOUBLE-CLICK",
    "Segment clicked twice (and run() called again) while the first run is still going",
    "One job runs; one labels layer, equal to what a later single run gives",
)
def test_segment_twice_quickly(viewer, tiny_model, qtbot, monkeypatch):
    gate = Gate(monkeypatch)
    viewer.add_image(speckle((24, 24)), name="scan")
    widget = SegmentWidget(viewer)
    widget.run_button.native.click()
    widget.run_button.native.click()
    widget.run()  # a shortcut or script calling it directly
    gate.open()
    wait_idle(qtbot, widget)
    assert gate.jobs == 1 and masks_of(viewer) == ["scan mask"]
    first = viewer.layers["scan mask"].data.copy()
    widget.run_button.native.click()
    wait_idle(qtbot, widget)
    assert gate.jobs == 2 and masks_of(viewer) == ["scan mask"]
    np.testing.assert_array_equal(viewer.layers["scan mask"].data, first)


@case(
    "GUI-REMOVED-WHILE-RUNNING",
    "The image layer is deleted while it is being segmented",
    "No orphan mask layer is added; the widget says why; segmenting another image works",
)
def test_image_removed_while_running(viewer, tiny_model, qtbot, monkeypatch, shown_errors):
    gate = Gate(monkeypatch)
    image = viewer.add_image(speckle((24, 24)), name="scan")
    widget = SegmentWidget(viewer)
    widget.run_button.native.click()
    viewer.layers.remove(image)
    gate.open()
    wait_idle(qtbot, widget)
    assert masks_of(viewer) == [] and "was removed" in widget.status.value
    other = viewer.add_image(speckle((24, 24), seed=1), name="other")
    widget.image.value = other
    widget.run_button.native.click()
    wait_idle(qtbot, widget)
    assert masks_of(viewer) == ["other mask"] and shown_errors == []


@case(
    "GUI-CHANGED-WHILE-RUNNING",
    "The image layer's data is replaced by an array of another shape while it is segmented",
    "The stale result is not applied (no mask of the wrong shape); the widget asks to run again",
)
def test_image_changed_while_running(viewer, tiny_model, qtbot, monkeypatch):
    gate = Gate(monkeypatch)
    image = viewer.add_image(speckle((24, 24)), name="scan")
    widget = SegmentWidget(viewer)
    widget.run_button.native.click()
    image.data = speckle((30, 40))
    gate.open()
    wait_idle(qtbot, widget)
    assert masks_of(viewer) == [] and "press Segment again" in widget.status.value
    widget.run_button.native.click()
    wait_idle(qtbot, widget)
    assert viewer.layers["scan mask"].data.shape == (30, 40)


@case(
    "GUI-LAYERS-CHANGED-WHILE-RUNNING",
    "While image A is segmented: another image B is added and chosen, A's old mask layer is "
    "deleted",
    "The result goes to A only, as one new 'A mask' layer; B gets nothing",
)
def test_other_layers_change_while_running(viewer, tiny_model, qtbot, monkeypatch):
    first = viewer.add_image(speckle((24, 24)), name="A")
    widget = SegmentWidget(viewer)
    widget.run_button.native.click()
    wait_idle(qtbot, widget)
    gate = Gate(monkeypatch)
    widget.run_button.native.click()
    other = viewer.add_image(speckle((16, 16), seed=2), name="B")
    widget.image.value = other
    viewer.layers.remove("A mask")
    gate.open()
    wait_idle(qtbot, widget)
    assert masks_of(viewer) == ["A mask"]
    assert viewer.layers["A mask"].data.shape == first.data.shape
    assert widget.image.value is other


@case(
    "GUI-MULTI-LABEL",
    "A labels layer with labels 1, 2 and 3 added as a training pair in the fine-tune dock",
    "The pair is added with all labels as foreground; the widget and a napari warning say "
    "that the labels were merged",
)
def test_multi_label_pair_is_added_with_a_note(viewer, tiny_model, monkeypatch):
    warned: list[str] = []
    monkeypatch.setattr("wavegms.napari.finetune.show_warning", warned.append)
    labels = disc_mask(20, 20)
    labels[:3, :3], labels[-3:, -3:] = 2, 3
    dock = FinetuneWidget(viewer)
    dock.image.value = viewer.add_image(speckle((20, 20)), name="scan")
    dock.labels_layer.value = viewer.add_labels(labels, name="scan labels")
    dock.add_button.native.click()
    assert dock.status.value.startswith("added scan_001")
    assert "note:" in dock.status.value and "3 different label values" in dock.status.value
    assert len(warned) == 1 and TrainingSet("default").names() == ["scan_001"]
