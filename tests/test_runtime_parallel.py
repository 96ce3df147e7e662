"""The OpenVINO backend gives the eager model's soft masks (and is refused or skipped when it
cannot), and a folder's images run side by side give exactly the one-at-a-time masks."""

from __future__ import annotations

import copy
import sys
import warnings

import numpy as np
import pytest
import torch
from skimage.io import imread, imsave

from wavegms.inference.folder import segment_folder
from wavegms.inference.segmenter import Segmenter


@pytest.fixture
def two_threads():
    """Two torch threads (the tests run with one), so that side-by-side runs engage."""
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


def _images(n: int, size: int = 32) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.random((size, size + 8, 3), dtype=np.float32) for _ in range(n)]


def test_openvino_backend_gives_the_eager_soft_mask_in_fp32(tiny_network):
    ov = pytest.importorskip("openvino")
    from wavegms.runtime.onnx_graph import cached_onnx
    from wavegms.runtime.openvino_session import compile_graph

    segmenter = Segmenter(tiny_network, device="cpu", backend="openvino")
    images = _images(3)
    soft = segmenter.predict_soft(images)
    assert segmenter.graph_backend == "openvino"
    eager = Segmenter(tiny_network, device="cpu", backend="eager").predict_soft(images)
    np.testing.assert_allclose(soft, eager, atol=1e-4)
    compiled = compile_graph(cached_onnx(tiny_network))
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32


def test_without_openvino_the_next_backend_runs(tiny_network, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    monkeypatch.setattr("wavegms.runtime.backends.AUTO_ORDER", ("openvino", "onnx"))
    auto = Segmenter(tiny_network, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an optional runtime not installed: nothing to say
        soft = auto.predict_soft(_images(1))
    assert auto.graph_backend == "onnx"
    eager = Segmenter(tiny_network, device="cpu", backend="eager").predict_soft(_images(1))
    np.testing.assert_allclose(soft, eager, atol=1e-4)


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_side_by_side_gives_the_one_at_a_time_soft_masks(tiny_network, two_threads, backend):
    pytest.importorskip({"onnx": "onnxruntime"}.get(backend, backend))
    segmenter = Segmenter(tiny_network, device="cpu", backend=backend, batch_size=5)
    images = _images(5)
    calls = []
    segmenter.predict_soft(images[:1])  # builds the graph
    graph = segmenter._graph
    real = graph.run_many
    graph.run_many = lambda batch: calls.append(len(batch)) or real(batch)
    together = segmenter.predict_soft(images)
    assert calls == [5] and segmenter.graph_backend == backend
    alone = np.concatenate([segmenter.predict_soft([image]) for image in images])
    np.testing.assert_array_equal(together, alone)


def test_a_folder_run_side_by_side_writes_the_one_at_a_time_masks(
    tiny_network, two_threads, tmp_path
):
    pytest.importorskip("onnxruntime")
    src = tmp_path / "in"
    src.mkdir()
    for i, image in enumerate(_images(6, 40)):
        imsave(src / f"im{i}.png", (image * 255).astype(np.uint8), check_contrast=False)
    segmenter = Segmenter(tiny_network, device="cpu", backend="onnx", batch_size=4)
    one = copy.copy(segmenter)
    one.batch_size = 1
    segment_folder(segmenter, src, tmp_path / "together")
    segment_folder(one, src, tmp_path / "alone")
    assert segmenter.graph_backend == "onnx" and segmenter.side_by_side
    for sub in ("masks", "soft"):
        for i in range(6):
            together = imread(tmp_path / "together" / sub / f"im{i}.png")
            alone = imread(tmp_path / "alone" / sub / f"im{i}.png")
            np.testing.assert_array_equal(together, alone)


def test_a_side_by_side_run_that_disagrees_warns_and_runs_one_at_a_time(tiny_network):
    pytest.importorskip("onnxruntime")
    segmenter = Segmenter(tiny_network, device="cpu", backend="onnx", batch_size=3)
    images = _images(3)
    expected = segmenter.predict_soft(images)

    class Disagrees:
        def __init__(self, graph):
            self.graph = graph

        def __call__(self, batch):
            return self.graph(batch)

        def run_many(self, batch):
            from wavegms.runtime.onnx_session import check_same

            check_same(self(batch[0]) + 0.01, self(batch[0]), "the test graph")

    segmenter._graph = Disagrees(segmenter._graph)
    with pytest.warns(RuntimeWarning, match="one at a time: the test graph differs"):
        got = segmenter.predict_soft(images)
    np.testing.assert_array_equal(got, expected)
    assert not segmenter.side_by_side
