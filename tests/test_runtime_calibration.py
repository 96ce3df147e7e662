"""int8: the quantised graph is int8 where asked and close to fp32; activation ranges stored
with a model rebuild exactly the graph its images give; "auto" runs int8 only for a model
that carries usable ranges. One cache folder for the module: each graph is built once."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from wavegms.inference.segmenter import Segmenter  # noqa: E402
from wavegms.runtime.calibration import (  # noqa: E402
    METADATA_KEY,
    calibration_batches,
    calibration_record,
    sample_images,
    stored_ranges,
)
from wavegms.runtime.onnx_graph import GRAPH_VERSION, cached_onnx  # noqa: E402
from wavegms.runtime.onnx_session import OnnxSoftMask  # noqa: E402
from wavegms.runtime.quantize import quantize_onnx  # noqa: E402


def with_metadata(model, metadata: dict):
    """The same network (weights shared) with other metadata."""
    other = copy.copy(model)
    other.metadata = metadata
    return other


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("calibration_home")


@pytest.fixture
def shared_cache(home, monkeypatch):
    monkeypatch.setenv("WAVEGMS_HOME", str(home))


@pytest.fixture(scope="module")
def record(tiny_network, home):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WAVEGMS_HOME", str(home))
        return calibration_record(tiny_network, sample_images(), "the bundled samples")


def test_stored_ranges_rebuild_the_int8_graph_the_images_give(
    tiny_network, record, shared_cache, tmp_path
):
    assert record["graph"] == GRAPH_VERSION and record["images"] == 2
    assert record["ranges"] and all(lo <= hi for lo, hi in record["ranges"].values())
    fp32 = cached_onnx(tiny_network)
    last = [n.name for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv"][-1]
    batches = calibration_batches(sample_images(), 32)
    from_images = quantize_onnx(fp32, tmp_path / "images.onnx", batches, exclude=[last])
    # no image at all: the ranges alone decide
    ranges = record["ranges"]
    from_ranges = quantize_onnx(fp32, tmp_path / "ranges.onnx", ranges=ranges, exclude=[last])
    nodes = onnx.load(str(from_ranges)).graph.node
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in nodes}
    dequantized = {n.output[0] for n in nodes if n.op_type == "DequantizeLinear"}
    int8_weights = {n.name: n.input[1] in dequantized for n in nodes if n.op_type == "Conv"}
    assert not int8_weights[last] and sum(int8_weights.values()) > 1  # excluded: kept fp32
    images = torch.from_numpy(np.concatenate(list(calibration_batches(sample_images(), 32))))
    got = OnnxSoftMask(from_ranges)(images)
    assert torch.equal(got, OnnxSoftMask(from_images)(images))
    expected = OnnxSoftMask(fp32)(images)
    assert got.shape == expected.shape and torch.isfinite(got).all()
    assert got.min() >= 0 and got.max() <= 1
    assert 0 < (got - expected).abs().mean() < 0.05  # approximate, not exact: close on average


def test_auto_runs_int8_only_for_a_model_with_ranges(tiny_network, record, shared_cache):
    image = sample_images()[0]  # an image like the calibration's
    carried = Segmenter(with_metadata(tiny_network, {METADATA_KEY: record}), device="cpu")
    plain = Segmenter(with_metadata(tiny_network, {}), device="cpu")
    exact = Segmenter(with_metadata(tiny_network, {METADATA_KEY: record}), backend="onnx")
    masks = [s.segment(image)[1] for s in (carried, plain, exact)]
    assert [s.graph_backend for s in (carried, plain, exact)] == ["int8", "onnx", "onnx"]
    assert all(m.shape == image.shape[:2] for m in masks)
    np.testing.assert_array_equal(masks[1], masks[2])  # the exact graph, asked for or not
    assert np.abs(masks[0] - masks[1]).mean() < 0.05  # int8: close, not equal


@pytest.mark.parametrize(
    "change",
    [
        {"graph": GRAPH_VERSION + 1},  # ranges of another export: tensor names may differ
        {"ranges": {"x": [1.0, 0.0]}},
        {"ranges": {"x": [float("nan"), 1.0]}},
        {"ranges": {"x": [0.0]}},
        {"ranges": {}},
    ],
)
def test_unusable_ranges_are_no_calibration(record, change):
    assert stored_ranges({METADATA_KEY: record}) == record["ranges"]
    assert stored_ranges({METADATA_KEY: {**record, **change}}) is None
    assert stored_ranges({}) is None
