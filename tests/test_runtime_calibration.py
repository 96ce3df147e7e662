"""int8 activation ranges stored with a model rebuild the graph its images would give, and
"auto" runs int8 only for a model that carries usable ranges."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from wavegms.inference.segmenter import Segmenter
from wavegms.runtime.calibration import (
    METADATA_KEY,
    calibration_record,
    sample_images,
    stored_ranges,
)
from wavegms.runtime.onnx_graph import GRAPH_VERSION
from wavegms.runtime.quantize import build_int8_soft_mask


def with_metadata(model, metadata: dict):
    """The same network (weights shared) with other metadata."""
    other = copy.copy(model)
    other.metadata = metadata
    return other


@pytest.fixture(scope="module")
def record(tiny_network, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WAVEGMS_HOME", str(tmp_path_factory.mktemp("calibration_home")))
        return calibration_record(tiny_network, sample_images(), "the bundled samples")


def test_stored_ranges_rebuild_the_graph_the_images_give(tiny_network, record):
    assert record["graph"] == GRAPH_VERSION and record["images"] == 2
    assert record["ranges"] and all(lo <= hi for lo, hi in record["ranges"].values())
    from_images = build_int8_soft_mask(tiny_network, calibration=sample_images())
    carried = with_metadata(tiny_network, {METADATA_KEY: record})
    from_ranges = build_int8_soft_mask(carried)
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    assert torch.equal(from_ranges(images), from_images(images))
    # (the ranges decide, not the one image the quantiser runs on: from_ranges ran on one
    # image, from_images on both)


def test_auto_runs_int8_only_for_a_model_with_ranges(tiny_network, record):
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
