"""The "Review results" dock driven as a user would: open a segmented folder, look at the most
uncertain image, paint, Accept, Skip, Fine-tune now; the rest is segmented again."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from napari_helpers import speckle

from wavegms.core.files import write_png
from wavegms.data.masks import read_mask
from wavegms.inference.review import read_results, review_order
from wavegms.napari.review import ReviewWidget
from wavegms.napari.review_jobs import IMAGE, MASK, SOFT
from wavegms.napari.settings import FinetuneSettings, blank_request, save_settings
from wavegms.training.training_set import TrainingSet

pytestmark = pytest.mark.napari


@pytest.fixture
def segmented(tmp_path, tiny_model):
    """Eight small images segmented by the tiny model: (images folder, results folder)."""
    from wavegms.inference.folder import run_folder
    from wavegms.inference.folder_items import folder_items
    from wavegms.inference.segmenter import Segmenter

    images, out = tmp_path / "images", tmp_path / "out"
    for i in range(8):
        write_png(images / f"scan{i}.png", speckle((48, 56), seed=i))
    run_folder(Segmenter.load(tiny_model, device="cpu"), folder_items(images), out)
    return images, out


@pytest.fixture
def dock(make_napari_viewer, tiny_model):
    widget = ReviewWidget(make_napari_viewer())
    yield widget
    widget.shutdown()


def open_folder(widget: ReviewWidget, images, out) -> None:
    widget.out_dir.value, widget.images_dir.value = out, images
    widget.model.value = "tiny"
    widget.open_button.native.click()


def test_table_accept_skip_and_finetune_now(dock, segmented, qtbot):
    images, out = segmented
    widget, viewer = dock, dock.viewer
    open_folder(widget, images, out)
    order = review_order(read_results(out))
    qtbot.waitUntil(lambda: widget.names() == order, timeout=30_000)  # most uncertain first
    qtbot.waitUntil(lambda: widget.current == order[0], timeout=30_000)
    assert viewer.layers[IMAGE].data.shape == viewer.layers[MASK].data.shape == (48, 56)
    assert viewer.layers[MASK].mode == "paint"

    corrected = np.zeros((48, 56), np.uint8)  # the user paints the lesion
    corrected[10:30, 12:40] = 1
    viewer.layers[MASK].data = corrected
    widget.accept_button.native.click()
    qtbot.waitUntil(lambda: widget.current == order[1], timeout=30_000)
    (entry,) = TrainingSet("review").entries()
    assert entry.source == order[0]
    assert np.array_equal(
        read_mask(TrainingSet("review").masks_dir / f"{entry.name}.png"), corrected > 0
    )
    headers = [
        widget.table.horizontalHeaderItem(c).text() for c in range(widget.table.columnCount())
    ]
    assert headers == ["name", "status", "mask area", "uncertainty"]  # no ground truth: no scores
    status = {widget.table.item(r, 0).text(): widget.table.item(r, 1).text() for r in range(8)}
    assert status[order[0]] == "accepted"

    widget.skip_button.native.click()
    qtbot.waitUntil(lambda: widget.current == order[2], timeout=30_000)
    widget.soft_button.native.click()
    qtbot.waitUntil(lambda: SOFT in viewer.layers, timeout=30_000)
    widget.accept_button.native.click()
    qtbot.waitUntil(lambda: widget.current == order[3], timeout=30_000)
    assert len(TrainingSet("review").names()) == 2
    for i in range(3, 6):  # the fine-tune needs 5 pairs
        widget.accept_button.native.click()
        qtbot.waitUntil(lambda i=i: widget.current == order[i + 1], timeout=30_000)
    assert len(TrainingSet("review").names()) == 5

    request = dataclasses.replace(blank_request(), epochs=1, batch_size=2, augment=False)
    save_settings(FinetuneSettings(request=request))  # the fine-tune dock's settings
    reviewed = {n: (out / "soft" / f"{n}.png").read_bytes() for n in order[:6]}
    widget.run_button.native.click()
    assert widget.phase == "finetuning"
    qtbot.waitUntil(lambda: widget.busy, timeout=60_000)
    # 5 pairs: none held out; the model trains on all, a 3-fold check judges it, at a cost
    # said with the training's progress; the dock shows the k-fold figures, the user decides
    assert "3-fold check: 3 more fine-tunes of 1 epoch(s) on 3-4 pairs" in widget.progress.note
    qtbot.waitUntil(lambda: widget.adoption.asking, timeout=240_000)
    text = widget.adoption.text.value
    assert "3-fold check on all 5 accepted pairs" in text and "DSC" in text, text
    assert widget.session.state.model == "tiny"  # nothing adopted unasked
    widget.adoption.adopt_button.native.click()
    qtbot.waitUntil(lambda: widget.phase == "" and not widget.busy, timeout=240_000)
    model = widget.session.state.model
    assert model.startswith("tiny-review"), widget.status.value
    assert f"model {model}" in widget.status.value
    for name, data in reviewed.items():  # reviewed images keep their masks
        assert (out / "soft" / f"{name}.png").read_bytes() == data
    assert set(widget.names()) == set(order)
    assert widget.current in order[6:]
