"""The model layer by layer: parameter counts, shapes, wavelets, frozen backends."""

from __future__ import annotations

import numpy as np
import pytest
import pywt
import torch

from wavegms.core.errors import ModelFileError, WeightsNotFoundError
from wavegms.net.autoencoders import load_autoencoder
from wavegms.net.autoencoders.taef2 import TAEF2, load_taef2
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


def test_taef2_genuine_weights_round_trip_a_mask(taef2_dir):
    ae = load_taef2(taef2_dir)
    yy, xx = np.mgrid[:128, :128]
    disk = ((yy - 60) ** 2 + (xx - 70) ** 2 < 35**2).astype(np.float32)
    x = torch.from_numpy(disk)[None, None].expand(1, 3, -1, -1) * 2 - 1
    with torch.no_grad():
        z = ae.encode(x)
        y = ae.decode(z)
    assert z.shape == (1, 32, 16, 16)
    pred = ((y.mean(1) + 1) / 2)[0].numpy() > 0.5
    dice = 2 * (pred & (disk > 0)).sum() / (pred.sum() + disk.sum())
    assert dice > 0.99


def test_taef2_is_frozen_and_stays_in_eval_mode(taef2_dir):
    ae = load_autoencoder("taef2", taef2_dir)
    ae.train()
    assert not ae.training and not any(m.training for m in ae.modules())
    assert not any(p.requires_grad for p in ae.parameters())
    model = WaveGMS(ModelConfig()).attach(ae)
    model.train()
    assert not ae.training
    # The frozen weights are not part of what a model file stores.
    assert not any(k.startswith("autoencoder.") for k in model.trainable_state_dict())


def test_taef2_rejects_wrong_files(tmp_path, taef2_dir):
    for name in ("taef2_encoder.pth", "taef2_decoder.pth"):
        (tmp_path / name).write_bytes((taef2_dir / name).read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="sha256"):
        load_taef2(tmp_path)


def test_taef2_missing_offline_names_the_files(tmp_path, monkeypatch):
    monkeypatch.delenv("WAVEGMS_TAEF2")
    monkeypatch.setenv("WAVEGMS_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match=r"taef2_encoder\.pth") as err:
        load_taef2(download=False)
    assert str(tmp_path) in str(err.value)
    with pytest.raises(WeightsNotFoundError, match="not found in"):
        load_taef2(tmp_path / "nowhere")


def test_taef2_layout_matches_checkpoint_keys_strictly(taef2_dir):
    state = torch.load(taef2_dir / "taef2_decoder.pth", weights_only=True)
    assert set(TAEF2().decoder.state_dict()) == set(state)


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


def test_backend_channel_mismatch_is_refused(taef2_dir):
    with pytest.raises(ValueError, match="32 latent channels"):
        WaveGMS(ModelConfig(latent_channels=4)).attach(load_taef2(taef2_dir))
