"""wavegms.runtime: exact rewrites and exported graphs give the eager model's soft masks."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from wavegms.core.errors import InputError
from wavegms.inference.segmenter import Segmenter
from wavegms.net.model import latent_to_mask
from wavegms.runtime.decoder_rewrite import UpsampleConvPhases, rewrite_decoder
from wavegms.runtime.graph_cache import graph_dir
from wavegms.runtime.soft_mask import SoftMaskPath

# Tests of the graph cache itself: a cache of their own, not the session's shared one.
pytestmark = pytest.mark.own_graph_cache


SAMPLE = Path(__file__).resolve().parents[1] / "src/wavegms/package_data/sample_data/images"


def sample_image(size: int = 64) -> torch.Tensor:
    """The bundled ultrasound sample, resized to ``size`` square, as (1, 3, S, S) in [0, 1]."""
    from wavegms.data.images import read_image
    from wavegms.data.preprocess import model_input

    image = read_image(next(SAMPLE.glob("*.png")))
    return torch.from_numpy(model_input(image, size)).permute(2, 0, 1)[None]


def test_upsample_conv_phases_equal_upsample_then_conv():
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(5, 7, 3, padding=1)
    x = torch.randn(2, 5, 6, 9)
    expected = conv(torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
    torch.testing.assert_close(UpsampleConvPhases(conv)(x), expected, atol=1e-5, rtol=1e-5)


def test_rewritten_decoder_gives_the_soft_mask_on_random_latents(taef2):
    rewritten = rewrite_decoder(taef2.decoder)
    n_upsample = sum(isinstance(m, torch.nn.Upsample) for m in taef2.decoder)
    assert sum(isinstance(m, UpsampleConvPhases) for m in rewritten) == n_upsample == 3
    torch.manual_seed(0)
    latents = torch.randn(2, 32, 5, 7) * 2  # beyond the clamp's knee too
    with torch.no_grad():
        expected = latent_to_mask(taef2.decode(latents))
        got = rewritten(latents)
    assert got.shape == expected.shape == (2, 1, 40, 56)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert taef2.decoder[-1].out_channels == 3  # the original is left as it was


def test_rewritten_decoder_gives_the_soft_mask_of_a_real_image(taef2):
    with torch.no_grad():
        latent = taef2.encode(sample_image(64) * 2 - 1)
        expected = latent_to_mask(taef2.decode(latent))
        got = rewrite_decoder(taef2.decoder)(latent)
    assert expected.std() > 0.05  # a real image decodes to structure, not a constant
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_rewrite_refuses_another_layout():
    with pytest.raises(ValueError, match="not a TAEF2 decoder"):
        rewrite_decoder(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1)))


def test_soft_mask_path_equals_eager_model(tiny_network):
    image = torch.cat([sample_image(32), torch.rand(1, 3, 32, 32)])
    expected = tiny_network.predict_soft(image)
    with torch.no_grad():
        got = SoftMaskPath(tiny_network)(image)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def tiny_onnx(tiny_network, tmp_path_factory) -> Path:
    from wavegms.runtime.onnx_graph import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    assert export_onnx(tiny_network, path) == path
    return path


def test_onnx_export_gives_the_eager_soft_mask_for_any_batch_and_size(tiny_network, tiny_onnx):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == ("images", "mask")
    assert inp.shape[1] == 3 and out.shape[1] == 1
    assert all(isinstance(d, str) for d in (*inp.shape[::2], inp.shape[3]))  # N, H, W dynamic
    for images in (sample_image(32), torch.rand(3, 3, 48, 24)):
        expected = tiny_network.predict_soft(images).numpy()
        (got,) = session.run(None, {"images": images.numpy()})
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_onnx_export_is_cached_by_model_file_hash_and_reused(tiny_model_file, monkeypatch):
    from wavegms.runtime import onnx_graph

    exports = []
    real_export = onnx_graph.export_onnx

    def counting_export(model, path, **kwargs):
        exports.append(path)
        return real_export(model, path, **kwargs)

    monkeypatch.setattr(onnx_graph, "export_onnx", counting_export)
    digest = hashlib.sha256(tiny_model_file.read_bytes()).hexdigest()
    first = Segmenter.load("tiny", device="cpu", backend="onnx")
    soft = first.predict_soft([np.full((20, 30, 3), 0.5, np.float32)])
    assert first.graph_backend == "onnx" and len(exports) == 1
    assert exports[0].parent == graph_dir() and exports[0].is_file()
    assert exports[0].name.startswith(digest)
    assert f"torch-{torch.__version__.replace('+', '.')}" in exports[0].name
    second = Segmenter.load("tiny", device="cpu", backend="onnx")
    again = second.predict_soft([np.full((20, 30, 3), 0.5, np.float32)])
    assert len(exports) == 1 and second.graph_backend == "onnx"
    np.testing.assert_array_equal(soft, again)
    eager = Segmenter.load("tiny", device="cpu", backend="eager")
    np.testing.assert_allclose(
        soft, eager.predict_soft([np.full((20, 30, 3), 0.5, np.float32)]), atol=1e-4
    )


def test_a_backend_that_fails_to_build_warns_and_falls_back(tiny_model_file, monkeypatch):
    def broken(model, model_file=None):
        raise RuntimeError("no onnx today")

    monkeypatch.setattr("wavegms.runtime.onnx_session.build_onnx_soft_mask", broken)
    segmenter = Segmenter.load("tiny", device="cpu", backend="onnx")
    image = np.random.default_rng(0).random((24, 24, 3)).astype(np.float32)
    with pytest.warns(RuntimeWarning, match="no onnx today"):
        soft = segmenter.predict_soft([image])
    assert segmenter.graph_backend is None  # the exact eager model runs
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once: the next call does not warn again
        again = segmenter.predict_soft([image])
    np.testing.assert_array_equal(soft, again)
    eager = Segmenter.load("tiny", device="cpu", backend="eager").predict_soft([image])
    np.testing.assert_allclose(soft, eager, atol=1e-4)


def test_a_graph_that_disagrees_with_the_eager_model_is_never_used(tiny_network):
    from wavegms.runtime.onnx_session import check_against_eager

    def off_by_a_bit(images):
        return tiny_network.predict_soft(images) + 0.01

    check_against_eager(lambda images: tiny_network.predict_soft(images), tiny_network)
    with pytest.raises(ValueError, match="differs from the eager model"):
        check_against_eager(off_by_a_bit, tiny_network)


def test_unknown_backend_is_a_one_line_error(tiny_network):
    with pytest.raises(InputError, match="backend must be one of"):
        Segmenter(tiny_network, device="cpu", backend="fastest")
