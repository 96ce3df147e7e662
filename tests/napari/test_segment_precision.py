"""The Segment dock's precision: exact fp32 unless the user picks int8, and every mask says
which precision and backend made it (layer metadata and status line)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from napari_helpers import WAIT_MS, speckle, wait_idle

from wavegms.napari.segment import SegmentWidget
from wavegms.napari.settings import settings_path

pytestmark = pytest.mark.napari


def segment(qtbot, widget: SegmentWidget, layer) -> tuple[dict, np.ndarray]:
    """Press Segment on ``layer`` once the form's warm-up has built the graph of the chosen
    precision (before that, the exact eager model answers); the mask layer's provenance and
    the soft mask."""

    def warmed_up() -> bool:
        loaded = widget.slot.loaded
        return (
            widget._warming is not None
            and not widget._warming.is_alive()
            and (loaded is not None and loaded.precision == widget.precision.value)
        )

    qtbot.waitUntil(warmed_up, timeout=3 * WAIT_MS)
    assert widget.slot.loaded.segmenter.wait_for_graph(3 * WAIT_MS / 1000)
    widget.image.value = layer
    widget.run_button.native.click()
    # int8: quantising the graph takes onnxruntime's quantiser CPU-seconds on first use
    wait_idle(qtbot, widget, timeout=3 * WAIT_MS)
    assert widget.status.value.startswith("done"), widget.status.value
    made = widget.viewer.layers[f"{layer.name} mask"].metadata["wavegms"]
    return made, widget.viewer.layers[f"{layer.name} soft mask"].data.copy()


def test_exact_by_default_and_int8_only_when_picked(make_napari_viewer, tiny_model, qtbot):
    from wavegms.inference.segmenter import Segmenter

    viewer = make_napari_viewer()
    picture = speckle((72, 60))
    image = viewer.add_image(picture, name="scan")
    widget = SegmentWidget(viewer)
    widget.soft_mask.value = True
    assert widget.precision.value == "fp32"  # the default, without asking

    made, exact_soft = segment(qtbot, widget, image)
    assert made["precision"] == "fp32" and made["backend"] == "onnx", made
    assert made["model"] == "tiny" and len(made["model_sha256"]) == 64
    status = widget.status.value
    assert "precision fp32 on onnx" in status and "not exact" not in status
    eager = Segmenter.load(tiny_model, "cpu", backend="eager")
    np.testing.assert_allclose(exact_soft, eager.segment(picture)[1], atol=1e-4)

    widget.precision.value = "int8"  # the user's choice, saved for the next session
    assert json.loads(settings_path().read_text())["segment"]["precision"] == "int8"
    made, int8_soft = segment(qtbot, widget, image)
    assert made["precision"] == "int8" and made["backend"] == "int8", made
    assert made["model_sha256"] == eager.provenance()["model_sha256"]
    assert "precision int8 on int8 (not exact)" in widget.status.value
    assert widget.slot.loaded.segmenter.running_precision == "int8"
    # Quantised arithmetic: close to the exact soft mask, not equal to it.
    difference = np.abs(int8_soft - exact_soft)
    assert 0 < difference.max() < 0.25, difference.max()

    assert SegmentWidget(viewer).precision.value == "int8"  # restored from the settings
