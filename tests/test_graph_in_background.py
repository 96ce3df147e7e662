"""The fast graph is prepared in the background (issue 25): the first images run the exact
eager model meanwhile, and both give the same masks (the project requires Dice >= 0.999
between the exact paths)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import wavegms.inference.segmenter as segmenter_module
from wavegms.inference.segmenter import Segmenter
from wavegms.scoring.metrics import dice

pytest.importorskip("onnxruntime")  # the default fast graph: ONNX Runtime, exact fp32


def test_the_first_images_run_eager_while_the_graph_is_built_with_the_same_masks(
    tiny_network, tiny_segmenter, monkeypatch
):
    graph = tiny_segmenter._soft_mask_graph()  # the real exact graph, built once per session
    assert tiny_segmenter.graph_backend == "onnx"
    release, builds = threading.Event(), []

    def slow_build(backend, model, model_file, calibration=None):  # an export taking long
        builds.append(backend)
        assert release.wait(60)
        return graph

    monkeypatch.setattr(segmenter_module, "build_graph", slow_build)
    segmenter = Segmenter(tiny_network, device="cpu")
    stack = np.random.default_rng(0).integers(0, 256, (3, 40, 48), dtype=np.uint8)
    try:
        assert segmenter.prepare_graph() and segmenter.building_graph
        eager_binary, eager_soft = segmenter.segment(stack)  # not waiting for the graph
        assert segmenter.last_backend == "eager" and segmenter.building_graph
        assert segmenter.prepare_graph() and builds == ["onnx"]  # never a second build
    finally:
        release.set()
    assert segmenter.wait_for_graph(60)
    binary, soft = segmenter.segment(stack)
    assert segmenter.last_backend == "onnx" == segmenter.provenance()["backend"]
    assert builds == ["onnx"] and not segmenter.prepare_graph()
    assert np.abs(soft - eager_soft).max() <= 1e-3  # exact fp32 both: float rounding only
    assert dice(binary, eager_binary) >= 0.999
    middle = float(np.median(eager_soft))  # a threshold that makes half of it foreground
    assert dice(soft > middle, eager_soft > middle) >= 0.999


def test_provenance_waits_for_the_graph_being_built(tiny_network, tiny_segmenter, monkeypatch):
    graph = tiny_segmenter._soft_mask_graph()
    release, builds = threading.Event(), []

    def slow_build(backend, model, model_file, calibration=None):
        builds.append(backend)
        assert release.wait(60)
        return graph

    monkeypatch.setattr(segmenter_module, "build_graph", slow_build)
    segmenter = Segmenter(tiny_network, device="cpu")
    starter = threading.Thread(target=segmenter.prepare_graph, daemon=True)  # as a Qt worker
    starter.start()
    starter.join()
    # Joined at exit even so: killed inside torch at exit, a daemon thread aborts the process.
    assert segmenter.building_graph and not segmenter._builder.daemon
    threading.Timer(0.2, release.set).start()
    assert segmenter.provenance()["backend"] == "onnx"  # what runs from now on, waited for
    assert builds == ["onnx"]


def test_a_graph_that_cannot_be_built_leaves_the_exact_eager_model(tiny_network, monkeypatch):
    def failing_build(backend, model, model_file, calibration=None):
        raise ImportError("no onnxruntime here")

    monkeypatch.setattr(segmenter_module, "build_graph", failing_build)
    segmenter = Segmenter(tiny_network, device="cpu")
    segmenter.prepare_graph()
    assert segmenter.wait_for_graph(60)
    segmenter.segment(np.zeros((40, 48), np.uint8))
    assert segmenter.last_backend == "eager" and segmenter.provenance()["backend"] == "eager"
