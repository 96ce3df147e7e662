"""The box dock and the measurement dock, driven as a user would."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from napari.layers import Labels
from napari_helpers import speckle, wait_idle

from wavegms.napari.boxes import BoxSegmentWidget
from wavegms.napari.measure_dock import MeasureWidget

pytestmark = pytest.mark.napari


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def test_a_rectangle_on_a_shapes_layer_gives_labels_inside_it(viewer, qtbot, tiny_model):
    image = viewer.add_image(speckle((48, 60)), name="us", scale=(0.2, 0.1))
    # drawn in world coordinates (mm): rows 10-29, columns 20-44 of the image
    shapes = viewer.add_shapes(
        [np.array([[9.5, 19.5], [29.5, 44.5]]) * (0.2, 0.1)], shape_type="rectangle",
        name="boxes", scale=(1.0, 1.0),
    )  # fmt: skip
    widget = BoxSegmentWidget(viewer)
    widget.image.value, widget.shapes.value = image, shapes
    widget.threshold.value, widget.margin.value = 0.0, 0.0  # threshold 0: the whole box
    widget.run_button.native.click()
    wait_idle(qtbot, widget)
    labels = viewer.layers["us boxes"]
    assert isinstance(labels, Labels) and "done" in widget.status.value
    assert tuple(labels.scale) == (0.2, 0.1)  # the image's spacing travels on
    inside = np.zeros((48, 60), bool)
    inside[10:30, 20:45] = True
    np.testing.assert_array_equal(labels.data > 0, inside)
    assert set(np.unique(labels.data)) == {0, 1}


def test_the_dock_pairs_busi_box_with_busi_and_runs_both(viewer, qtbot, tiny_model):
    """As the CLI: busi-box's crops averaged with busi's whole image unless another model is
    chosen; the whole-image model is loaded (in the worker) into its own slot."""
    import shutil

    from wavegms.store.paths import user_models_dir

    folder = user_models_dir()
    for name in ("busi-box", "busi"):  # the tiny model under the shipped models' names
        for suffix in (".safetensors", ".json"):
            shutil.copyfile(folder / f"tiny{suffix}", folder / f"{name}{suffix}")
    image = viewer.add_image(speckle((48, 60)), name="us")
    shapes = viewer.add_shapes([np.array([[9.5, 19.5], [29.5, 44.5]])], shape_type="rectangle")
    widget = BoxSegmentWidget(viewer)
    assert (widget.model.value, widget.whole.value) == ("busi-box", "busi")
    widget.model.value = "tiny"
    assert widget.whole.value == "none"  # a model of the user's choice: its crops alone
    widget.model.value = "busi-box"
    assert widget.whole.value == "busi"
    widget.image.value, widget.shapes.value = image, shapes
    widget.threshold.value, widget.margin.value = 0.0, 0.0
    widget.run_button.native.click()
    wait_idle(qtbot, widget)
    labels = viewer.layers["us boxes"]
    assert isinstance(labels, Labels) and "done" in widget.status.value
    inside = np.zeros((48, 60), bool)
    inside[10:30, 20:45] = True
    np.testing.assert_array_equal(labels.data > 0, inside)  # threshold 0: the whole box
    assert widget.slot.loaded.path.stem == "busi-box"
    assert widget.whole_slot.loaded.path.stem == "busi"


def test_no_rectangle_is_a_one_line_error(viewer, qtbot, tiny_model, shown_errors):
    viewer.add_image(speckle((20, 20)), name="us")
    viewer.add_shapes(name="empty")
    widget = BoxSegmentWidget(viewer)
    widget.run_button.native.click()
    assert not widget.busy and "no rectangle" in widget.status.value
    assert "us boxes" not in viewer.layers


def test_the_measurement_dock_follows_edits_and_saves_csv(viewer, qtbot, tmp_path):
    data = np.zeros((40, 50), np.uint8)
    data[5:15, 10:30] = 1
    layer = viewer.add_labels(data, name="mask", scale=(0.5, 0.2))
    widget = MeasureWidget(viewer)
    viewer.layers.selection.active = layer
    qtbot.waitUntil(lambda: bool(widget.rows) and not widget.busy, timeout=30_000)
    (row,) = widget.rows
    assert row["area_mm2"] == pytest.approx(200 * 0.1)
    assert row["longest_diameter_mm"] == pytest.approx(np.hypot(5.0, 4.0))
    assert "mm" in widget.status.value
    edited = data.copy()
    edited[25:35, 35:45] = 2
    layer.data = edited  # a new lesion: measured again once the edit settles
    qtbot.waitUntil(lambda: len(widget.rows) == 2 and not widget.busy, timeout=30_000)
    assert [r["label"] for r in widget.rows] == [1, 2]
    assert widget.table.shape[0] == 2
    out = tmp_path / "lesions.csv"
    widget.save(str(out))
    with open(out, newline="") as f:
        saved = list(csv.DictReader(f))
    assert [float(r["area_mm2"]) for r in saved] == pytest.approx([20.0, 10.0])


def test_a_nifti_volume_box_gives_mm_labels_that_the_dock_measures(
    viewer, qtbot, tiny_model, tmp_path
):
    from clinical_files import write_nifti

    volume = np.random.default_rng(2).normal(size=(30, 40, 3)).astype(np.float32)
    path = write_nifti(tmp_path / "vol.nii.gz", volume, (0.5, 0.8, 2.0))
    [image] = viewer.open(str(path), plugin="napari-wavegms")
    np.testing.assert_allclose(image.scale, (2.0, 0.5, 0.8))
    corners = [[1, 4.5, 9.5], [1, 4.5, 19.5], [1, 14.5, 19.5], [1, 14.5, 9.5]]
    shapes = viewer.add_shapes([np.array(corners)], shape_type="rectangle", scale=image.scale)
    measure = MeasureWidget(viewer)
    widget = BoxSegmentWidget(viewer)
    widget.image.value, widget.shapes.value = image, shapes
    widget.threshold.value, widget.margin.value = 0.0, 0.0
    widget.run_button.native.click()
    wait_idle(qtbot, widget)
    labels = viewer.layers["vol boxes"]
    np.testing.assert_allclose(labels.scale, image.scale)  # the labels inherit the mm spacing
    assert labels.data.shape == (3, 30, 40)
    assert not labels.data[[0, 2]].any() and (labels.data[1, 5:15, 10:20] == 1).all()
    assert labels.data[1].sum() == 100
    viewer.layers.selection.active = labels
    qtbot.waitUntil(lambda: bool(measure.rows) and not measure.busy, timeout=30_000)
    (row,) = measure.rows
    assert row["name"] == "vol boxes[1]" and row["area_mm2"] == pytest.approx(100 * 0.4)
    assert row["longest_diameter_mm"] == pytest.approx(np.hypot(5.0, 8.0))
