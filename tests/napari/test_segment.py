"""The Segment widget, driven as a user would: pick a layer, press Segment, read the layers."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from napari.layers import Image, Labels
from napari_helpers import WAIT_MS, speckle, wait_idle

from wavegms.napari.segment import SegmentWidget
from wavegms.napari.settings import settings_path

pytestmark = pytest.mark.napari


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def segment(qtbot, widget: SegmentWidget, layer) -> None:
    widget.image.value = layer
    widget.run_button.native.click()
    wait_idle(qtbot, widget)


def test_no_image_layer_shows_error(viewer, tiny_model, shown_errors):
    viewer.add_labels(np.zeros((8, 8), np.uint8), name="only labels")
    widget = SegmentWidget(viewer)
    assert widget.image.choices == ()  # labels layers are not offered
    widget.run_button.native.click()
    assert not widget.busy
    assert "no image layer" in widget.status.value
    assert shown_errors and "no image layer" in shown_errors[0]
    assert len(viewer.layers) == 1


def test_no_model_installed(viewer, shown_errors):
    viewer.add_image(speckle((8, 8)), name="img")
    widget = SegmentWidget(viewer)
    assert widget.model.choices == () and widget.image.value is viewer.layers["img"]
    widget.run_button.native.click()
    assert "no model available" in widget.status.value and shown_errors


def test_choices_follow_the_layers(viewer, tiny_model):
    widget = SegmentWidget(viewer)
    assert widget.image.value is None
    first = viewer.add_image(speckle((16, 16)), name="first")
    viewer.add_labels(np.zeros((16, 16), np.uint8), name="some labels")
    assert widget.image.choices == (first,)
    assert widget.image.value is first
    second = viewer.add_image(speckle((16, 16)), name="second")
    assert widget.image.choices == (first, second)
    second.name = "renamed"
    assert "renamed" in [widget.image.native.itemText(i) for i in range(2)]
    viewer.layers.remove(first)
    assert widget.image.choices == (second,)
    assert "tiny" in widget.model.choices and widget.model.value == "tiny"
    assert widget.device.choices[0] == "auto" and "cpu" in widget.device.choices


def test_segment_2d_updates_one_labels_layer(viewer, tiny_model, qtbot):
    image = viewer.add_image(speckle((48, 40)), name="scan", scale=(0.5, 2.0), translate=(3, 4))
    widget = SegmentWidget(viewer)
    widget.soft_mask.value = True
    segment(qtbot, widget, image)
    assert widget.status.value.startswith("done"), widget.status.value
    mask = viewer.layers["scan mask"]
    soft = viewer.layers["scan soft mask"]
    assert isinstance(mask, Labels) and isinstance(soft, Image)
    assert mask.data.shape == (48, 40) and mask.data.dtype == np.uint8
    assert set(np.unique(mask.data)) <= {0, 1}
    assert soft.data.dtype == np.float32 and 0 <= soft.data.min() <= soft.data.max() <= 1
    np.testing.assert_array_equal(mask.data, (soft.data > widget.threshold.value))
    np.testing.assert_allclose(mask.scale, (0.5, 2.0))
    np.testing.assert_allclose(mask.translate, (3, 4))
    loaded = widget.loaded
    assert loaded is not None and widget.progress.last.stage == "segment"

    widget.threshold.value = 1.0  # nothing is above 1: an empty mask, same layer updated
    segment(qtbot, widget, image)
    assert [layer.name for layer in viewer.layers] == ["scan", "scan mask", "scan soft mask"]
    assert viewer.layers["scan mask"] is mask and not mask.data.any()
    assert widget.loaded is loaded  # same model and device: not reloaded

    widget.device.value = "cpu" if widget.device.value != "cpu" else "auto"
    segment(qtbot, widget, image)
    assert widget.loaded is loaded  # "auto" is the CPU here: the same model, not reloaded


KINDS = {  # layer data, rgb, expected labels shape
    "rgb": (speckle((30, 20, 3)), True, (30, 20)),
    "rgba": (speckle((30, 20, 4)), True, (30, 20)),
    "uint16": (speckle((30, 20), dtype=np.uint16), False, (30, 20)),
    "float": (speckle((30, 20), dtype=np.float32) * 1000 - 5, False, (30, 20)),
    "3d-stack": (speckle((3, 30, 20)), False, (3, 30, 20)),
    "time-stack": (speckle((2, 3, 30, 20)), False, (2, 3, 30, 20)),
}


def test_segment_image_kinds(viewer, tiny_model, qtbot):
    """One widget (one model load) for every kind of image layer."""
    widget = SegmentWidget(viewer)
    widget.threshold.value = 0.0
    for name, (data, rgb, expected) in KINDS.items():
        image = viewer.add_image(data, name=name, rgb=rgb)
        segment(qtbot, widget, image)
        mask = viewer.layers[f"{name} mask"]
        assert mask.data.shape == expected and mask.data.dtype == np.uint8, name
        assert mask.data.max() == 1, name  # threshold 0: the positive soft mask is foreground


def test_cancel_leaves_no_layer(viewer, tiny_model, qtbot):
    image = viewer.add_image(speckle((10, 32, 32)), name="stack")
    widget = SegmentWidget(viewer)
    widget.image.value = image
    widget.run_button.native.click()
    assert widget.busy and widget.progress.bar is not None  # the dock's progress bar shows
    assert widget.progress_bar.native.isVisibleTo(widget.native)
    widget.cancel_button.native.click()  # the worker is still loading the model
    assert not widget.busy  # at once: the form does not wait for the worker
    assert widget.status.value == "cancelled: no mask was added"
    # the worker ends in the background; its late result is dropped
    qtbot.waitUntil(lambda: not widget.slot._lock.locked(), timeout=WAIT_MS)
    qtbot.wait(300)
    assert "stack mask" not in viewer.layers
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    assert widget.progress.bar is None and not widget.progress_bar.native.isVisibleTo(widget.native)


def test_bad_model_file_is_reported(viewer, tiny_model, qtbot, shown_errors):
    from wavegms.store.paths import user_models_dir

    (user_models_dir() / "broken.safetensors").write_bytes(b"not a model")
    (user_models_dir() / "broken.json").write_text("{}")
    image = viewer.add_image(speckle((16, 16)), name="img")
    widget = SegmentWidget(viewer)
    widget.model.value = "broken"
    segment(qtbot, widget, image)
    assert widget.status.value.startswith("Error:") and "broken" in widget.status.value
    assert shown_errors and "img mask" not in viewer.layers


def test_settings_persist(viewer, tiny_model, qtbot):
    widget = SegmentWidget(viewer)
    widget.threshold.value = 0.3
    widget.device.value = "cpu"
    widget.soft_mask.value = True
    saved = json.loads(settings_path().read_text())["segment"]
    assert saved == {
        "model": "tiny",
        "device": "cpu",
        "threshold": 0.3,
        "soft_mask": True,
        "precision": "fp32",
    }
    again = SegmentWidget(viewer)
    assert (again.threshold.value, again.device.value, again.soft_mask.value) == (0.3, "cpu", True)


@pytest.mark.data
def test_busi_image(viewer, tiny_model, qtbot, data_root):
    from wavegms.data.images import read_image

    folder = data_root / "busi" / "images"
    if not folder.is_dir():
        pytest.skip("BUSI not available")
    data = read_image(sorted(folder.glob("*.png"))[0])
    image = viewer.add_image(data, name="busi")
    widget = SegmentWidget(viewer)
    segment(qtbot, widget, image)
    assert viewer.layers["busi mask"].data.shape == data.shape[:2]


def test_painted_corrections_are_never_replaced(viewer, tiny_model, qtbot):
    image = viewer.add_image(speckle((32, 32)), name="scan")
    widget = SegmentWidget(viewer)
    segment(qtbot, widget, image)
    mask = viewer.layers["scan mask"]
    corrected = mask.data.copy()
    corrected[4:12, 4:12] = 1  # the user paints a correction
    corrected[20:24, 20:24] = 0
    mask.data = corrected
    widget.threshold.value = 1.0  # a different result
    segment(qtbot, widget, image)
    np.testing.assert_array_equal(viewer.layers["scan mask"].data, corrected)
    new = [layer for layer in viewer.layers if layer.name.startswith("scan mask ")]
    assert len(new) == 1 and not new[0].data.any()
    assert "was kept" in widget.status.value
    segment(qtbot, widget, image)  # the unedited new layer is updated, not duplicated
    assert len([layer for layer in viewer.layers if isinstance(layer, Labels)]) == 2


def test_the_model_is_warmed_up_when_the_form_opens(viewer, tiny_model, qtbot):
    image = viewer.add_image(speckle((40, 40)), name="scan")
    widget = SegmentWidget(viewer)
    qtbot.waitUntil(lambda: widget.loaded is not None, timeout=60_000)
    warmed = widget.loaded
    assert warmed.path.stem == "tiny"
    segment(qtbot, widget, image)
    assert widget.loaded is warmed  # the click used the warmed-up model, no second load
    assert "scan mask" in viewer.layers


def test_a_lazy_stack_is_read_in_the_worker(viewer, tiny_model, qtbot):
    """The GUI thread reads only the plane napari shows; the worker reads the stack."""
    dask = pytest.importorskip("dask")
    import dask.array as da

    planes = speckle((4, 24, 24))
    reads: list[tuple[int, threading.Thread]] = []  # (plane, reading thread)

    def read(block, block_info=None):
        reads.append((block_info[0]["chunk-location"][0], threading.current_thread()))
        return block

    lazy = da.from_array(planes, chunks=(1, 24, 24)).map_blocks(read, dtype=planes.dtype)
    with dask.config.set(scheduler="synchronous"):  # blocks are read by the calling thread
        image = viewer.add_image(lazy, name="lazy")
        shown = viewer.dims.current_step[0]
        widget = SegmentWidget(viewer)
        reads.clear()
        segment(qtbot, widget, image)
    assert viewer.layers["lazy mask"].data.shape == (4, 24, 24)
    gui = threading.main_thread()
    assert {plane for plane, thread in reads if thread is not gui} == {0, 1, 2, 3}
    assert {plane for plane, thread in reads if thread is gui} <= {shown}


def test_the_mask_layer_is_added_while_the_model_runs(viewer, tiny_model, qtbot, monkeypatch):
    """Adding a labels layer costs a third of a click: it overlaps the model run, and the
    result only replaces the new layer's data (issue 17, click -> labels under 0.5 s)."""
    import wavegms.napari.segment as segment_module

    release, real_job = threading.Event(), segment_module.segment_job

    def held_job(**kwargs):
        release.wait(WAIT_MS / 1000)
        return real_job(**kwargs)

    monkeypatch.setattr(segment_module, "segment_job", held_job)
    image = viewer.add_image(speckle((32, 40)), name="scan")
    widget = SegmentWidget(viewer)
    widget.image.value = image
    widget.run_button.native.click()
    assert widget.busy and "scan mask" in viewer.layers  # added before the result
    placeholder = viewer.layers["scan mask"]
    assert placeholder.data.shape == (32, 40) and not placeholder.data.any()
    release.set()
    wait_idle(qtbot, widget)
    assert viewer.layers["scan mask"] is placeholder and len(viewer.layers) == 2
    assert placeholder.data.any() and "done: scan mask" in widget.status.value

    # Cancelled or failed, the empty layer goes again; painted in meanwhile, it stays.
    other = viewer.add_image(speckle((32, 40), seed=1), name="other")
    release.clear()
    widget.image.value = other
    widget.run_button.native.click()
    assert "other mask" in viewer.layers
    widget.cancel_button.native.click()
    assert "other mask" not in viewer.layers
    release.set()
    qtbot.waitUntil(lambda: not widget.slot._lock.locked(), timeout=WAIT_MS)
    release.clear()
    widget.run_button.native.click()
    painted = viewer.layers["other mask"]
    painted.data = np.ones((32, 40), np.uint8)  # the user paints while the model runs
    release.set()
    wait_idle(qtbot, widget)
    assert viewer.layers["other mask"] is painted and painted.data.all()  # kept as painted
    assert "was kept" in widget.status.value
