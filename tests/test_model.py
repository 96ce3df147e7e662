"""The model layer by layer: parameter counts, shapes, wavelets, frozen backends."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import pywt
import torch
from safetensors import safe_open

from wavegms.core.errors import ModelFileError, WeightsNotFoundError
from wavegms.net.autoencoders import load_autoencoder
from wavegms.net.autoencoders.taef2 import (
    BUNDLED_DIR,
    COMMIT,
    HALVES,
    SHA256,
    TAEF2,
    find_weights,
    load_taef2,
)
from wavegms.net.ewave import WaveletEncoder
from wavegms.net.lmm import HEADS, LatentMappingModel
from wavegms.net.model import ModelConfig, WaveGMS
from wavegms.net.wavelets import haar_levels


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_parameter_counts_match_the_paper_with_4_channels():
    ewave, lmm = WaveletEncoder(4), LatentMappingModel(4)
    assert [n_params(level) for level in ewave.levels] == [258_204] * 3
    assert n_params(ewave.aggregate) == 261_080
    assert n_params(ewave) == 1_035_692
    assert n_params(lmm) == 1_564_976
    assert n_params(ewave) + n_params(lmm) == 2_600_668


def test_taef2_sized_model_shapes_and_total():
    model = WaveGMS(ModelConfig(latent_channels=32))
    assert n_params(model) == 2_681_364  # 1,043,812 E_wave + 1,637,552 LMM
    out = model(torch.rand(2, 3, 64, 64), sample=True)
    for key in ("z", "mu", "logvar", *HEADS):
        assert out[key].shape == (2, 32, 8, 8), key


def test_haar_levels_match_pywavelets_wavedec2():
    x = torch.rand(1, 3, 32, 48, dtype=torch.float64)
    for level, bands in zip((1, 2, 3), haar_levels(x), strict=True):
        coeffs = pywt.wavedec2(x.numpy(), "haar", level=level, mode="symmetric", axes=(-2, -1))
        expected = np.concatenate([coeffs[0], *coeffs[1]], axis=1) / 2**level
        assert bands.shape == (1, 12, 32 >> level, 48 >> level)
        np.testing.assert_allclose(bands.numpy(), expected, atol=1e-12)


def test_the_wavelet_transform_stays_fp32_under_bf16_autocast():
    # mixed-precision training (CUDA amp, a bf16 CPU) must not feed bf16 to ptwt's next level
    x = torch.rand(2, 3, 32, 32)
    exact = haar_levels(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        levels = haar_levels(x)
        mu, _ = WaveletEncoder(4)(x)
    for a, b in zip(exact, levels, strict=True):
        assert b.dtype == torch.float32 and torch.equal(a, b)
    assert mu.dtype == torch.bfloat16  # the convolutions after it do run in bf16


def test_logvar_is_clamped():
    enc = WaveletEncoder(4)
    with torch.no_grad():
        enc.aggregate.out.bias[4:].fill_(1e4)
    _, logvar = enc(torch.rand(1, 3, 32, 32))
    assert logvar.max().item() == 20.0


def test_inference_is_deterministic_training_samples():
    model = WaveGMS(ModelConfig(latent_channels=4)).eval()
    x = torch.rand(1, 3, 32, 32)
    z1, mu, _ = model.encode(x, sample=False)
    z2, _, _ = model.encode(x, sample=False)
    z3, _, _ = model.encode(x, sample=True)
    assert torch.equal(z1, z2) and torch.equal(z1, mu)
    assert not torch.equal(z3, mu)


def test_taef2_genuine_weights_round_trip_a_mask(taef2):
    yy, xx = np.mgrid[:128, :128]
    disk = ((yy - 60) ** 2 + (xx - 70) ** 2 < 35**2).astype(np.float32)
    x = torch.from_numpy(disk)[None, None].expand(1, 3, -1, -1) * 2 - 1
    with torch.no_grad():
        z = taef2.encode(x)
        y = taef2.decode(z)
    assert z.shape == (1, 32, 16, 16)
    pred = ((y.mean(1) + 1) / 2)[0].numpy() > 0.5
    dice = 2 * (pred & (disk > 0)).sum() / (pred.sum() + disk.sum())
    assert dice > 0.99


def test_taef2_is_frozen_and_stays_in_eval_mode():
    ae = load_autoencoder("taef2")
    ae.train()
    assert not ae.training and not any(m.training for m in ae.modules())
    assert not any(p.requires_grad for p in ae.parameters())
    model = WaveGMS(ModelConfig()).attach(ae)
    model.train()
    assert not ae.training
    # The frozen weights are not part of what a model file stores.
    assert not any(k.startswith("autoencoder.") for k in model.trainable_state_dict())


def test_bundled_taef2_equals_the_original_pth(taef2_dir, taef2):
    original = load_taef2(taef2_dir)
    assert [f.suffix for f in find_weights(taef2_dir)] == [".pth", ".pth"]
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        z, z_original = taef2.encode(x), original.encode(x)
        # fp16 tensors stored unchanged: bit-identical weights, hence identical outputs
        assert torch.equal(z, z_original)
        assert torch.equal(taef2.decode(z), original.decode(z))


def test_bundled_taef2_record_matches_the_pinned_files():
    record = json.loads((BUNDLED_DIR / "SOURCE.json").read_text())
    assert record["commit"] == COMMIT and record["repository"].endswith("madebyollin/taesd")
    for name, entry in record["files"].items():
        digest = hashlib.sha256((BUNDLED_DIR / name).read_bytes()).hexdigest()
        assert digest == entry["sha256"] == SHA256[name]
        assert entry["source_sha256"] == SHA256[entry["source"]]
    assert sorted(record["files"]) == ["taef2_decoder.safetensors", "taef2_encoder.safetensors"]
    assert "MIT License" in (BUNDLED_DIR / "LICENSE").read_text()


def test_taef2_comes_from_the_package_unless_a_folder_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("WAVEGMS_TAEF2", raising=False)
    assert find_weights() == [BUNDLED_DIR / f"taef2_{h}.safetensors" for h in HALVES]
    monkeypatch.setenv("WAVEGMS_TAEF2", str(tmp_path))
    # A named folder without the files is an error, never a silent fall-back to other weights.
    with pytest.raises(WeightsNotFoundError, match=r"WAVEGMS_TAEF2.*taef2_encoder\.pth"):
        find_weights()
    with pytest.raises(WeightsNotFoundError, match=r"not found in .*nowhere"):
        load_taef2(tmp_path / "nowhere")


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_taef2_rejects_files_other_than_the_pinned_ones(tmp_path, suffix):
    for half in HALVES:
        (tmp_path / f"taef2_{half}{suffix}").write_bytes(b"\0" * 64)
    with pytest.raises(ModelFileError, match=r"taef2_encoder\S* is not the pinned TAEF2.*sha256"):
        load_taef2(tmp_path)


def test_taef2_layout_matches_checkpoint_keys_strictly():
    model = TAEF2()
    for half in HALVES:
        with safe_open(BUNDLED_DIR / f"taef2_{half}.safetensors", "pt") as weights:
            assert set(getattr(model, half).state_dict()) == set(weights.keys())


def test_taesd_backend_loads_a_local_diffusers_folder(tmp_path):
    diffusers = pytest.importorskip("diffusers")
    tiny = diffusers.AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=4,
    )
    tiny.save_pretrained(tmp_path / "taesd")
    ae = load_autoencoder("taesd", tmp_path / "taesd")
    assert ae.latent_channels == 4 and not ae.training
    assert not any(p.requires_grad for p in ae.parameters())
    with torch.no_grad():
        z = ae.encode(torch.rand(1, 3, 64, 64) * 2 - 1)
        y = ae.decode(z)
    assert z.shape == (1, 4, 8, 8) and y.shape == (1, 3, 64, 64)
    model = WaveGMS(ModelConfig("taesd", 4, 64)).attach(ae)
    assert model.predict_soft(torch.rand(1, 3, 64, 64)).shape == (1, 1, 64, 64)


def test_taesd_missing_folder_is_a_clear_error(tmp_path):
    pytest.importorskip("diffusers")
    with pytest.raises(WeightsNotFoundError, match="could not load TAESD"):
        load_autoencoder("taesd", tmp_path / "missing")


def test_backend_channel_mismatch_is_refused(taef2):
    with pytest.raises(ValueError, match="32 latent channels"):
        WaveGMS(ModelConfig(latent_channels=4)).attach(taef2)
