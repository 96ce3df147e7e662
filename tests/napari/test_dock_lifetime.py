"""A dock owns its loaded model and the model's compiled graph: a second Segment click reuses
them, closing the dock frees them, and the dock opened again gets its own."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch
from napari_helpers import WAIT_MS, speckle, wait_idle

from wavegms.core.lifetime import Closable

pytestmark = pytest.mark.napari


class CountedGraph(Closable):
    """Stands for a runtime graph (the eager model's answer, so masks stay right), counting
    how many were built and whether each was closed; no export, which takes a busy machine a
    minute."""

    built: ClassVar[list[CountedGraph]] = []

    def __init__(self, model) -> None:
        self.model, self.closed = model, False

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        assert not self.closed, "a closed graph ran"
        return self.model.predict_soft(images)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def graphs(monkeypatch, wavegms_home) -> list[CountedGraph]:
    CountedGraph.built = []

    def build(backend, model, model_file, calibration=None) -> CountedGraph:
        graph = CountedGraph(model)
        # Only this test's model counts: a dock an earlier test left open may build too.
        if model_file is not None and Path(wavegms_home) in Path(model_file).parents:
            CountedGraph.built.append(graph)
        return graph

    monkeypatch.setattr("wavegms.inference.segmenter.build_graph", build)
    return CountedGraph.built


def _open_segment_dock(viewer, qtbot):
    from wavegms.napari.segment import SegmentWidget

    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment")
    qtbot.waitUntil(lambda: widget.loaded is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not widget._warming.is_alive(), timeout=WAIT_MS)
    return widget


def test_a_closed_segment_dock_frees_its_model_and_a_new_one_has_its_own(
    make_napari_viewer, tiny_model, qtbot, graphs
):
    viewer = make_napari_viewer()
    image = viewer.add_image(speckle((40, 40)), name="scan")
    first = _open_segment_dock(viewer, qtbot)
    segmenter = first.loaded.segmenter
    assert len(graphs) == 1 and not graphs[0].closed  # built by the warm-up
    for _click in range(2):
        first.image.value = image
        first.run_button.native.click()
        wait_idle(qtbot, first)
        assert first.status.value.startswith("done"), first.status.value
    assert first.loaded.segmenter is segmenter and len(graphs) == 1  # both clicks reused it

    viewer.window.remove_dock_widget(first.native)  # what napari's close button does
    assert first.slot.loaded is None and graphs[0].closed and segmenter._graph is None

    second = _open_segment_dock(viewer, qtbot)
    assert second.loaded.segmenter is not segmenter and len(graphs) == 2
    assert not graphs[1].closed
