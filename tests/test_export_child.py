"""A graph built in the background exports its ONNX graph in a child process
(``runtime.export_child``): torch's tracer holds the GIL for seconds, which stopped napari's
GUI thread. The child's graph is the graph this process would export (checked against the
eager model before use), and a child that fails leaves the export to this process."""

from __future__ import annotations

import numpy as np
import pytest

from wavegms.inference.segmenter import Segmenter

pytest.importorskip("onnxruntime")  # the default fast graph: ONNX Runtime, exact fp32

pytestmark = pytest.mark.own_graph_cache  # each test exports afresh


def _refuse_here(monkeypatch) -> list:
    """This process's exporter, made to refuse: an export here fails the build."""
    from wavegms.runtime import onnx_graph

    here = []

    def refused(model, path, **kwargs):
        here.append(path)
        raise AssertionError("exported in this process")

    monkeypatch.setattr(onnx_graph, "export_onnx", refused)
    return here


def test_the_background_build_exports_in_a_child_process(tiny_model_file, monkeypatch):
    here = _refuse_here(monkeypatch)
    segmenter = Segmenter.load("tiny", device="cpu", backend="onnx")
    assert segmenter.prepare_graph()
    assert segmenter.wait_for_graph(600)
    assert here == [] and segmenter.graph_backend == "onnx"  # built, and not here
    image = np.random.default_rng(0).integers(0, 256, (40, 48), dtype=np.uint8)
    _, soft = segmenter.segment(image)
    assert segmenter.last_backend == "onnx"
    eager = Segmenter.load("tiny", device="cpu", backend="eager")
    _, expected = eager.segment(image)
    assert np.abs(soft - expected).max() <= 1e-3  # exact fp32 both: float rounding only


def test_a_build_the_caller_waits_for_exports_here(tiny_model_file, monkeypatch):
    here = _refuse_here(monkeypatch)
    segmenter = Segmenter.load("tiny", device="cpu", backend="onnx")
    with pytest.warns(RuntimeWarning, match="exported in this process"):
        segmenter.predict_soft([np.full((20, 30, 3), 0.5, np.float32)])
    assert len(here) == 1 and segmenter.graph_backend is None  # eager after the refusal


def test_a_failing_child_leaves_the_export_to_this_process(tiny_model_file, monkeypatch):
    from wavegms.runtime import export_child

    monkeypatch.setattr(export_child, "MODULE", "wavegms.no_such_module")
    segmenter = Segmenter.load("tiny", device="cpu", backend="onnx")
    with pytest.warns(RuntimeWarning, match="the export in a child process failed"):
        assert segmenter.prepare_graph()
        assert segmenter.wait_for_graph(600)
    assert segmenter.graph_backend == "onnx"
