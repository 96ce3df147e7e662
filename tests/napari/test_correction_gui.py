"""Issue 25 in real widgets: a worse model is not adopted, Accept clicked twice adds one pair
and deletes nothing, and a reserved model name survives a simulated restart."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
from napari_helpers import speckle

from wavegms.core.files import write_png
from wavegms.inference.adoption import MIN_HELD_OUT
from wavegms.napari.review import ReviewWidget
from wavegms.napari.review_jobs import MASK
from wavegms.store import reservations
from wavegms.training.finetune import MIN_PAIRS
from wavegms.training.training_set import TrainingSet

pytestmark = pytest.mark.napari
WAIT_MS = 240_000


@pytest.fixture
def review(make_napari_viewer, tiny_model, tmp_path):
    """The review dock open on ten small images segmented by the tiny model."""
    from wavegms.inference.folder import run_folder
    from wavegms.inference.folder_items import folder_items
    from wavegms.inference.segmenter import Segmenter

    images, out = tmp_path / "images", tmp_path / "out"
    for i in range(10):
        write_png(images / f"scan{i}.png", speckle((48, 56), seed=i))
    run_folder(Segmenter.load(tiny_model, device="cpu"), folder_items(images), out)
    widget = ReviewWidget(make_napari_viewer())
    widget.out_dir.value, widget.images_dir.value, widget.model.value = out, images, "tiny"
    widget.open_button.native.click()
    yield widget, out
    widget.shutdown()


def _agree(project: str) -> None:
    pairs = TrainingSet(project)
    listed = {f"{n}.png" for n in pairs.names()}
    for folder in (pairs.images_dir, pairs.masks_dir):
        assert {p.name for p in folder.glob("*.png")} == listed


def test_accept_clicked_twice_adds_one_pair_and_deletes_nothing(review, qtbot):
    widget, _ = review
    qtbot.waitUntil(lambda: widget.current is not None, timeout=WAIT_MS)
    first = widget.current
    widget.viewer.layers[MASK].data = np.ones((48, 56), np.uint8)
    widget.accept_button.native.click()
    widget.accept_button.native.click()  # before the first has finished
    qtbot.waitUntil(lambda: widget.current not in (None, first), timeout=WAIT_MS)
    qtbot.wait(500)  # the second click's worker ends too
    assert TrainingSet("review").names() == [first]
    _agree("review")
    assert widget.session.state.accepted == [first]
    widget.viewer.layers.remove(MASK)  # the user closed the mask layer, then clicks Accept
    widget.accept_button.native.click()
    assert "select an image first" in widget.status.value
    assert TrainingSet("review").names() == [first] and widget.session.state.accepted == [first]
    _agree("review")


@pytest.mark.parametrize(
    ("current", "new", "says"), [(80.0, 60.0, "is not better"), (60.0, 80.0, "Undo batch")]
)
def test_a_new_model_replaces_nothing_until_the_user_adopts_it(
    review, qtbot, monkeypatch, current, new, says
):
    # A worse model is never adopted; a better one (on a few held-out pairs, the hardest
    # images) is recommended, and nothing is segmented again until the user says so.
    from wavegms.inference import adoption
    from wavegms.napari.settings import FinetuneSettings, blank_request, save_settings
    from wavegms.store.catalogue import list_models

    widget, out = review
    qtbot.waitUntil(lambda: widget.current is not None, timeout=WAIT_MS)
    for _ in range(MIN_PAIRS + MIN_HELD_OUT):  # 8: judged by the k-fold check
        shown = widget.current
        widget.accept_button.native.click()
        qtbot.waitUntil(lambda s=shown: widget.current != s, timeout=WAIT_MS)
    masks = {p.name: p.read_bytes() for p in (out / "masks").glob("*.png")}

    # Scores as on the held-out pairs
    def scores(model, root, names, *args, **kwargs):
        return [current if model == "tiny" else new] * len(names)

    monkeypatch.setattr(adoption, "pair_dsc", scores)
    request = dataclasses.replace(blank_request(), epochs=1, batch_size=2, augment=False)
    save_settings(FinetuneSettings(request=request))
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: widget.adoption.asking, timeout=WAIT_MS)
    text = widget.adoption.text.value
    assert says in text and "60.0%" in text and "80.0%" in text
    assert widget.session.state.model == "tiny"  # not adopted
    assert {p.name: p.read_bytes() for p in (out / "masks").glob("*.png")} == masks
    candidate = widget.session.state.candidate
    assert candidate not in list_models()  # not installed
    widget.adoption.decline_button.native.click()
    qtbot.waitUntil(lambda: not widget.adoption.asking, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: reservations.open_runs() == [], timeout=WAIT_MS)
    # The decline's worker frees the name, then clears the candidate: wait for both.
    qtbot.waitUntil(lambda: widget.session.state.candidate == "", timeout=WAIT_MS)
    assert widget.session.state.model == "tiny"


def test_a_reserved_name_survives_a_restart(make_napari_viewer, tiny_model, tmp_path, qtbot):
    from wavegms.napari.finetune import FinetuneWidget
    from wavegms.store.catalogue import list_models

    # A run that started before the "restart" and finished while nobody looked.
    run = tmp_path / "runs" / "finetune-default-ft1"
    reservations.reserve_name("default-ft1", run)
    (run / "best").mkdir(parents=True)
    from wavegms.store.paths import user_models_dir

    for suffix in (".safetensors", ".json"):
        (run / f"best{suffix}").write_bytes((user_models_dir() / f"tiny{suffix}").read_bytes())
    path = reservations.reservation_path("default-ft1")
    dead = os.getpid() + 1
    while reservations.pid_alive(dead):
        dead += 1
    path.write_text(json.dumps({**json.loads(path.read_text()), "pid": dead}))
    reservations.mark_finished("default-ft1", {"best_epoch": "3"})
    widget = FinetuneWidget(make_napari_viewer())  # napari opened again
    try:
        assert widget.fields["new_name"].value == "default-ft2"  # the held name is not taken
        qtbot.waitUntil(lambda: widget.adoption.asking, timeout=WAIT_MS)
        assert "default-ft1" in widget.status.value and "not reviewed" in widget.status.value
        widget.adoption.adopt_button.native.click()
        qtbot.waitUntil(lambda: "default-ft1" in list_models(), timeout=WAIT_MS)
        assert reservations.open_runs() == []
    finally:
        widget.shutdown()
