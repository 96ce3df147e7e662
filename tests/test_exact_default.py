"""Exact is the default on every install: with ONNX Runtime (the [napari] install) and without
it (a plain install, simulated by making ``import onnxruntime`` fail), the default mask is the
eager fp32 model's; int8 runs only when asked for, and says so."""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import pytest

from wavegms.core.errors import InputError
from wavegms.inference.segmenter import Segmenter, backend_line


@pytest.fixture
def plain_install(monkeypatch):
    """No ONNX Runtime, no OpenVINO: their imports fail as on a plain ``pip install``."""
    for module in ("onnxruntime", "onnxruntime.quantization", "openvino"):
        monkeypatch.setitem(sys.modules, module, None)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


def test_the_default_is_exact_fp32_and_int8_only_asked_for(tiny_network):
    default = Segmenter(tiny_network, device="cpu")
    assert (default.backend, default.precision) == ("auto", "fp32")
    assert backend_line("auto", "fp32") == ("onnx",)  # then the eager model: both exact
    assert backend_line("auto", "int8")[0] == "int8"
    old_style = Segmenter(tiny_network, device="cpu", backend="int8")
    assert old_style.precision == "int8"
    with pytest.raises(InputError, match="int8 runs on ONNX Runtime only"):
        Segmenter(tiny_network, device="cpu", backend="traced", precision="int8")
    with pytest.raises(InputError, match="precision must be fp32 or int8"):
        Segmenter(tiny_network, device="cpu", precision="fp16")


def test_a_plain_install_runs_the_eager_model_at_once_and_says_so(tiny_network, plain_install):
    image = np.random.default_rng(0).random((40, 30, 3)).astype(np.float32)
    segmenter = Segmenter(tiny_network, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing optional runtime is nothing to warn about
        soft = segmenter.predict_soft([image])
    assert segmenter.graph_backend is None and segmenter.running_precision == "fp32"
    eager = Segmenter(tiny_network, device="cpu", backend="eager").predict_soft([image])
    np.testing.assert_array_equal(soft, eager)
    assert segmenter.provenance()["backend"] == "eager"


def test_int8_asked_for_without_onnx_runtime_names_the_extra_and_stays_exact(
    tiny_network, plain_install
):
    image = np.random.default_rng(1).random((32, 32, 3)).astype(np.float32)
    segmenter = Segmenter(tiny_network, device="cpu", precision="int8")
    with pytest.warns(RuntimeWarning, match=r"napari-wavegms\[cpu-fast\]") as caught:
        soft = segmenter.predict_soft([image])
    assert all("\n" not in str(w.message) for w in caught)  # one line each
    assert segmenter.running_precision == "fp32"
    eager = Segmenter(tiny_network, device="cpu", backend="eager").predict_soft([image])
    np.testing.assert_array_equal(soft, eager)


def test_provenance_names_model_file_backend_and_precision(tiny_model_file):
    from wavegms.runtime.graph_cache import file_sha256

    segmenter = Segmenter.load("tiny", device="cpu", backend="eager")
    assert segmenter.provenance() == {
        "model": "tiny",
        "model_sha256": file_sha256(tiny_model_file),
        "backend": "eager",
        "precision": "fp32",
    }


#: The eager model's masks of the images below, made once for both installs (the slow part).
_EAGER_MASKS: list[np.ndarray] = []


def _default_vs_eager(name: str, images: list[np.ndarray]) -> tuple[str, float]:
    """The backend the default runs and its worst Dice against the eager model."""
    if not _EAGER_MASKS:
        eager = Segmenter.load(name, device="cpu", backend="eager")
        _EAGER_MASKS.extend(eager.segment(im)[0] for im in images)
    default = Segmenter.load(name, device="cpu")
    masks = [default.segment(im)[0] for im in images]
    return default.graph_backend or "eager", min(map(dice, masks, _EAGER_MASKS))


@pytest.fixture
def busi_and_sample(data_root):
    """The first six BUSI test images and the bundled sample image."""
    from wavegms.data.images import read_image
    from wavegms.package_data import as_path, sample_file

    folder = data_root / "busi"
    names = json.loads((folder / "split.json").read_text())["test"][:6]
    images = [read_image(next((folder / "images").glob(f"{n}.*"))) for n in names]
    with as_path(sample_file()) as path:
        return [*images, read_image(path)]


@pytest.fixture
def module_cache(tmp_path_factory, monkeypatch):
    """One user cache for the shipped model's graph across this module's installs."""
    monkeypatch.setenv("WAVEGMS_HOME", str(tmp_path_factory.getbasetemp() / "exact_default"))


@pytest.mark.shipped
@pytest.mark.data
@pytest.mark.parametrize("install", ["napari", "plain"])
def test_default_mask_equals_eager_on_busi_and_the_sample(
    install, busi_and_sample, module_cache, request
):
    if install == "plain":
        request.getfixturevalue("plain_install")
    else:
        pytest.importorskip("onnxruntime")
    backend, worst = _default_vs_eager("busi", busi_and_sample)
    assert backend == ("onnx" if install == "napari" else "eager")
    assert worst >= 0.999, (install, backend, worst)
