"""The first Segment click (issue 25): it used to wait a minute or more, without a word, for
the fast graph to be exported and compiled. Now a progress report is shown within 0.5 s of the
click, the mask comes from the exact eager model while the graph is prepared in the
background, and the next click runs the graph."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from napari_helpers import WAIT_MS, speckle, wait_idle

import wavegms.inference.segmenter as segmenter_module
from wavegms.napari.segment import SegmentWidget

pytestmark = pytest.mark.napari


class _Graph:
    """The prepared graph: the model's own exact soft mask (that the ONNX graph gives the
    eager model's masks is tests/test_graph_in_background.py's)."""

    def __init__(self, model) -> None:
        self.model = model

    def __call__(self, images):
        return self.model.predict_soft(images)


def test_the_first_click_reports_at_once_and_segments_while_the_graph_is_built(
    make_napari_viewer, tiny_model, qtbot, monkeypatch, wavegms_home
):
    release, builds = threading.Event(), []

    def slow_build(backend, model, model_file, calibration=None):  # an export taking long
        # Only this test's model counts: a form an earlier test left open may build too.
        if model_file is None or Path(wavegms_home) not in Path(model_file).parents:
            return _Graph(model)
        builds.append(backend)
        release.wait(WAIT_MS / 1000)
        return _Graph(model)

    monkeypatch.setattr(segmenter_module, "build_graph", slow_build)
    viewer = make_napari_viewer()
    viewer.add_image(speckle((48, 40)), name="scan")
    widget = SegmentWidget(viewer)
    rendered = []  # (time, stage, status line) of each report the form showed
    show = widget.progress.show

    def recording_show(report) -> None:
        show(report)
        rendered.append((time.perf_counter(), report.stage, widget.status.value))

    monkeypatch.setattr(widget.progress, "show", recording_show)
    try:
        # The form opened: the model loaded, its graph (none in the cache) is being built.
        qtbot.waitUntil(lambda: builds == ["onnx"], timeout=WAIT_MS)
        qtbot.waitUntil(lambda: not widget._warming.is_alive(), timeout=WAIT_MS)
        clicked = time.perf_counter()
        widget.run_button.native.click()
        qtbot.waitUntil(lambda: bool(rendered), timeout=WAIT_MS)
        first_report = rendered[0][0] - clicked
        assert first_report < 0.5
        assert rendered[0][2] == "loading the model tiny…"
        qtbot.waitUntil(lambda: len(rendered) > 1, timeout=WAIT_MS)  # the worker's own
        print(f"first report drawn {first_report * 1000:.0f} ms after the click, the worker's "
              f"first {(rendered[1][0] - clicked) * 1000:.0f} ms after it")  # fmt: skip
        wait_idle(qtbot, widget)
        segmenter = widget.loaded.segmenter
        assert segmenter.building_graph and builds == ["onnx"]  # the mask came first
        assert any("preparing the fast graph" in text for _, _, text in rendered)
        assert "exact eager model while the fast graph is prepared" in widget.status.value
        first = viewer.layers["scan mask"].data.copy()
    finally:
        release.set()
    assert segmenter.wait_for_graph(WAIT_MS / 1000)
    rendered.clear()
    widget.run_button.native.click()
    wait_idle(qtbot, widget)
    assert widget.status.value.startswith("done"), widget.status.value
    assert "on onnx)" in widget.status.value  # the built graph made this mask
    assert segmenter.last_backend == "onnx" == segmenter.provenance()["backend"]
    assert not any(stage == "graph" for _, stage, _ in rendered)  # nothing left to prepare
    assert builds == ["onnx"]  # built once
    np.testing.assert_array_equal(viewer.layers["scan mask"].data, first)
