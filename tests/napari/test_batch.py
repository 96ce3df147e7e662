"""The batch dialog: folder in, masks + CSV out, skipping unreadable files, never overwriting
unasked, cancellable; opened from the plugin's menu command."""

from __future__ import annotations

import csv

import pytest
from napari_helpers import disc_mask, speckle, wait_idle

from wavegms.core.files import write_png
from wavegms.napari.batch import BatchWidget, open_batch_dialog

pytestmark = pytest.mark.napari


@pytest.fixture
def folders(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "gt"
    write_png(images / "a.png", speckle((40, 30)))
    write_png(images / "b.png", speckle((24, 36, 3), seed=1))
    write_png(masks / "a.png", disc_mask(40, 30))
    write_png(masks / "b.png", disc_mask(24, 36))
    return images, masks, tmp_path / "out"


def form(viewer, images, out, gt=None) -> BatchWidget:
    widget = BatchWidget(viewer)
    widget.input_dir.value, widget.output_dir.value = images, out
    widget.gt_dir.value = gt
    widget.model.value = "tiny"
    return widget


def run(qtbot, widget: BatchWidget) -> None:
    widget.run_button.native.click()
    wait_idle(qtbot, widget)


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_folder_without_ground_truth(make_napari_viewer, tiny_model, qtbot, folders):
    images, _, out = folders
    (images / "broken.png").write_bytes(b"this is not a PNG")
    widget = form(make_napari_viewer(), images, out)
    run(qtbot, widget)
    assert widget.status.value.startswith("done: 2 of 3 image(s) written"), widget.status.value
    assert widget.status.value.endswith("1 skipped")
    assert {p.name for p in (out / "masks").glob("*.png")} == {"a.png", "b.png"}
    assert {p.name for p in (out / "soft").glob("*.png")} == {"a.png", "b.png"}
    rows = read_csv(out / "results.csv")
    assert [r["name"] for r in rows] == ["a", "b"]
    assert (rows[0]["height"], rows[0]["width"]) == ("40", "30")
    assert (rows[1]["height"], rows[1]["width"]) == ("24", "36")
    from wavegms.data.masks import read_mask

    assert int(rows[0]["mask_area"]) == int(read_mask(out / "masks" / "a.png").sum())
    assert widget.result.skipped[0][0] == "broken.png"
    assert "broken.png" in widget.report.value and "1 file(s) skipped" in widget.report.value


def test_existing_outputs_need_consent(make_napari_viewer, tiny_model, qtbot, folders):
    images, _, out = folders
    widget = form(make_napari_viewer(), images, out)
    run(qtbot, widget)
    stamp = (out / "results.csv").stat().st_mtime_ns
    asked: list[str] = []
    widget.confirm_overwrite = lambda message: asked.append(message) or False
    run(qtbot, widget)
    assert asked and "already exist" in asked[0]
    assert widget.status.value.startswith("Error: nothing written")
    assert (out / "results.csv").stat().st_mtime_ns == stamp

    widget.confirm_overwrite = lambda message: True  # the user agrees: run again, replacing
    run(qtbot, widget)
    wait_idle(qtbot, widget)
    assert widget.status.value.startswith("done: 2 of 2") and widget.result.written == 2
    assert (out / "results.csv").stat().st_mtime_ns != stamp

    widget.confirm_overwrite = lambda message: pytest.fail("the checkbox means: do not ask")
    widget.overwrite.value = True
    run(qtbot, widget)
    assert widget.status.value.startswith("done: 2 of 2")


def test_folder_with_ground_truth(make_napari_viewer, tiny_model, qtbot, folders):
    images, masks, out = folders
    (images / "broken.png").write_bytes(b"not an image")
    write_png(masks / "broken.png", disc_mask(8, 8))
    widget = form(make_napari_viewer(), images, out, gt=masks)
    run(qtbot, widget)
    assert widget.status.value.startswith("done: 2 of "), widget.status.value
    assert [name for name, _ in widget.result.skipped] == ["broken.png"]
    assert "mean DSC" in widget.report.value
    rows = read_csv(out / "results.csv")
    assert [r["name"] for r in rows[:2]] == ["a", "b"]
    for key in ("dsc_native", "iou_native", "hd95_native", "mask_area", "height"):
        assert key in rows[0]
    assert 0 <= float(rows[0]["dsc_native"]) <= 100
    assert {p.name for p in (out / "masks").glob("*.png")} == {"a.png", "b.png"}


def test_cancel(make_napari_viewer, tiny_model, qtbot, folders):
    images, _, out = folders
    widget = form(make_napari_viewer(), images, out)
    widget.run_button.native.click()
    widget.cancel_button.native.click()  # while the model loads: no image is segmented
    wait_idle(qtbot, widget)
    assert widget.status.value.startswith("cancelled: 0 of 2 image(s) written")
    assert widget.result.cancelled and widget.result.written == 0
    assert not list(out.glob("*.png"))


def test_bad_folders_are_reported(make_napari_viewer, tiny_model, qtbot, tmp_path, shown_errors):
    widget = form(make_napari_viewer(), tmp_path / "missing", tmp_path / "out")
    run(qtbot, widget)
    assert "does not exist" in widget.status.value and shown_errors
    (tmp_path / "in").mkdir()
    write_png(tmp_path / "in" / "x.png", speckle((8, 8)))
    widget.input_dir.value, widget.gt_dir.value = tmp_path / "in", tmp_path / "in_gt_missing"
    run(qtbot, widget)
    assert "ground-truth folder" in widget.status.value


def test_menu_command_opens_the_panel(make_napari_viewer, tiny_model, qtbot, tmp_path):
    viewer = make_napari_viewer()
    panel = open_batch_dialog(viewer)
    assert isinstance(panel, BatchWidget) and open_batch_dialog(viewer) is panel
    assert "tiny" in panel.model.choices
    panel.input_dir.value, panel.output_dir.value = tmp_path, tmp_path / "o"
    again = BatchWidget(viewer)  # folders persist between sessions
    assert str(again.input_dir.value) == str(tmp_path)
