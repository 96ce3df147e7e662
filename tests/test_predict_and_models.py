"""Model files, the registry, prediction on any image shape, and folder segmentation."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from wavegms.core.errors import InputError, ModelFileError
from wavegms.data.preprocess import split_planes
from wavegms.inference.segmenter import Segmenter
from wavegms.net.model import ModelConfig, WaveGMS
from wavegms.store.catalogue import list_models, model_paths, resolve_model
from wavegms.store.model_files import load_model, save_model
from wavegms.store.reservations import check_new_model_name


def test_model_file_round_trip_is_exact(tmp_path):
    torch.manual_seed(1)
    model = WaveGMS(ModelConfig(image_size=32))
    path = save_model(model, tmp_path / "m", metadata={"note": "x"})
    loaded = load_model(path)
    assert loaded.config == model.config and loaded.metadata == {"note": "x"}
    for k, v in model.trainable_state_dict().items():
        assert torch.equal(v, loaded.trainable_state_dict()[k]), k
    with pytest.raises(FileExistsError):
        save_model(model, tmp_path / "m")


def test_half_precision_file_is_half_the_size(tmp_path):
    model = WaveGMS(ModelConfig())
    full = save_model(model, tmp_path / "full").stat().st_size
    half = save_model(model, tmp_path / "half", half=True).stat().st_size
    assert half < 0.55 * full
    assert load_model(tmp_path / "half").ewave.levels[0].inp.weight.dtype == torch.float32


def test_model_file_problems_are_model_file_errors(tmp_path):
    path = save_model(WaveGMS(ModelConfig(image_size=32)), tmp_path / "m")
    weights, config = model_paths(path)
    data = json.loads(config.read_text())
    config.write_text(json.dumps({**data, "format_version": 99}))
    with pytest.raises(ModelFileError, match="format version 99"):
        load_model(path)
    config.write_text(json.dumps({**data, "model": {**data["model"], "latent_channels": 4}}))
    with pytest.raises(ModelFileError, match="does not match its config"):
        load_model(path)
    config.write_text(json.dumps(data))
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="not a readable safetensors"):
        load_model(path)


def test_registry_lists_user_models_and_protects_names(tiny_model_file):
    assert list_models()["tiny"] == tiny_model_file
    assert resolve_model("tiny") == tiny_model_file
    assert resolve_model(tiny_model_file.with_suffix("")) == tiny_model_file
    with pytest.raises(ModelFileError, match=r"available: .*tiny"):
        resolve_model("nope")
    with pytest.raises(InputError, match="already exists"):
        check_new_model_name("tiny")
    with pytest.raises(InputError, match="not a usable model name"):
        check_new_model_name("../evil")


@pytest.mark.parametrize(
    ("shape", "rgb", "expected"),
    [
        ((20, 30), None, (20, 30)),
        ((20, 30, 3), None, (20, 30)),
        ((20, 30, 4), None, (20, 30)),
        ((5, 20, 30), None, (5, 20, 30)),
        ((2, 5, 20, 30, 3), True, (2, 5, 20, 30)),
    ],
)
def test_segment_keeps_the_input_shape(segmenter, shape, rgb, expected):
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    binary, soft = segmenter.segment(image, rgb=rgb)
    assert binary.shape == expected and binary.dtype == bool
    assert soft.shape == expected and soft.dtype == np.float32
    assert soft.min() >= 0 and soft.max() <= 1
    np.testing.assert_array_equal(binary, soft > 0.5)


def test_stack_planes_are_segmented_independently(segmenter):
    rng = np.random.default_rng(0)
    planes = rng.random((3, 24, 24)).astype(np.float32)
    _, soft_stack = segmenter.segment(planes)
    _, soft_one = segmenter.segment(planes[1])
    np.testing.assert_allclose(soft_stack[1], soft_one, atol=1e-5)


def test_threshold_is_per_call(segmenter):
    image = np.random.default_rng(0).random((20, 24)).astype(np.float32)
    binary, soft = segmenter.segment(image, threshold=0.0)
    np.testing.assert_array_equal(binary, soft > 0.0)
    assert segmenter.threshold == 0.5  # the shared segmenter is not changed
    binary, soft = segmenter.segment(image)
    np.testing.assert_array_equal(binary, soft > 0.5)
    with pytest.raises(InputError, match="threshold"):
        segmenter.segment(image, threshold=1.5)


def test_the_catalogue_does_not_import_torch():
    code = (
        "import sys\n"
        "from wavegms.store.catalogue import list_models, read_config, resolve_model\n"
        "read_config(resolve_model(next(iter(list_models()))))\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_images_are_input_errors():
    with pytest.raises(InputError):
        split_planes(np.zeros((0, 5)))
    with pytest.raises(InputError):
        split_planes(np.zeros(5))


def test_traced_cpu_graph_gives_the_eager_masks(tiny_model_file):
    image = np.random.default_rng(3).random((37, 41, 3)).astype(np.float32)
    traced = Segmenter.load("tiny", device="cpu")
    eager = Segmenter.load("tiny", device="cpu", backend="eager")
    assert traced.traced and not eager.traced
    soft_t = traced.predict_soft([image, image[::-1]])
    soft_e = eager.predict_soft([image, image[::-1]])
    assert traced._graph is not None
    np.testing.assert_allclose(soft_t, soft_e, atol=1e-4)


def test_a_graph_that_cannot_be_traced_falls_back_to_eager(tiny_model_file, monkeypatch):
    def broken(model):
        raise RuntimeError("no tracing today")

    monkeypatch.setattr("wavegms.runtime.traced.trace_soft_mask", broken)
    segmenter = Segmenter.load("tiny", device="cpu", backend="traced")
    image = np.zeros((16, 16, 3), np.float32)
    with pytest.warns(RuntimeWarning, match="no tracing today"):
        soft = segmenter.predict_soft([image])
    assert soft.shape == (1, 32, 32) and not segmenter.traced
    expected = Segmenter.load("tiny", device="cpu", backend="eager").predict_soft([image])
    np.testing.assert_allclose(soft, expected, atol=1e-6)
