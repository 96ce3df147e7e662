"""TAEF2, the tiny autoencoder for the FLUX.2 latent space (32 channels at 1/8 resolution).

The original checkpoints (madebyollin/taesd, MIT) are fp16 state dicts of two ``nn.Sequential``
networks. The modules below reproduce that layout index for index so the files load with strict
key checks. TAESD's layout plus a "pool" branch on the blocks at 1/8 resolution, which diffusers'
``AutoencoderTiny`` has no slot for, hence this module.

The package ships the weights as fp16 safetensors (``wavegms/weights/taef2/``, converted from the
originals by ``scripts/convert_taef2.py``, same tensors and keys), so nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from torch import nn

from wavegms.core.errors import ModelFileError, WeightsNotFoundError
from wavegms.net.autoencoders import FrozenAutoencoder

LATENT_CHANNELS = 32
REPOSITORY = "https://github.com/madebyollin/taesd"
COMMIT = "5cccb12dc72074a4be35680c3b108548a7c69978"
URL = "https://raw.githubusercontent.com/madebyollin/taesd/" + COMMIT + "/{file}"
HALVES = ("encoder", "decoder")
#: Every accepted file, pinned: the originals and their conversion shipped in the package.
SHA256 = {
    "taef2_encoder.pth": "10a4e1021e89d7551eaf161352da8dbd0b1aa83872ae28b150c1df1ce2f147b6",
    "taef2_decoder.pth": "0a44a31e1ae59eb9dbf9359d24942fd3ef5928162c1800d97a28c61d51be0ab5",
    "taef2_encoder.safetensors": "ed439d4f19057d2a3b8fb43e3caa9aff37f5b9fdbf707cddff57f5a8ae8d5068",
    "taef2_decoder.safetensors": "79b69df8dd742e179d3b929905310a39901a805840f9b2b8968d1bbf5f65d642",
}
FORMATS = (".safetensors", ".pth")  # a folder's files are read in the first format it has all of
ENV_VAR = "WAVEGMS_TAEF2"
BUNDLED_DIR = Path(__file__).resolve().parents[2] / "weights" / "taef2"


def conv(c_in: int, c_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1, **kwargs)


class Clamp(nn.Module):
    """Soft clamp of latents to about [-3, 3] before decoding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    """conv-ReLU-conv-ReLU-conv plus identity, fused by ReLU; optional pre-block pool branch."""

    def __init__(self, channels: int, pool: bool = False) -> None:
        super().__init__()
        c = channels
        self.conv = nn.Sequential(conv(c, c), nn.ReLU(), conv(c, c), nn.ReLU(), conv(c, c))
        self.pool = (
            nn.Sequential(
                nn.Conv2d(c, 4 * c, 1, bias=False),
                nn.GroupNorm(4, 4 * c),
                nn.ReLU(),
                nn.Conv2d(4 * c, c, 1, bias=False),
            )
            if pool
            else None
        )
        self.fuse = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + x)


def encoder(latent_channels: int = LATENT_CHANNELS, width: int = 64) -> nn.Sequential:
    """[0, 1] image -> latent. Indices match the original checkpoint."""
    layers: list[nn.Module] = [conv(3, width), Block(width)]
    for stage in range(3):
        deepest = stage == 2  # blocks at 1/8 resolution carry the pool branch
        layers += [conv(width, width, stride=2, bias=False)]
        layers += [Block(width, pool=deepest) for _ in range(3)]
    layers.append(conv(width, latent_channels))
    return nn.Sequential(*layers)


def decoder(latent_channels: int = LATENT_CHANNELS, width: int = 64) -> nn.Sequential:
    """Latent -> [0, 1] image. Indices match the original checkpoint (index 0 is the clamp)."""
    layers: list[nn.Module] = [Clamp(), conv(latent_channels, width), nn.ReLU()]
    for stage in range(3):
        shallowest = stage == 0  # the first blocks still run at 1/8 resolution
        layers += [Block(width, pool=shallowest) for _ in range(3)]
        layers += [nn.Upsample(scale_factor=2), conv(width, width, bias=False)]
    layers += [Block(width), conv(width, 3)]
    return nn.Sequential(*layers)


class TAEF2(FrozenAutoencoder):
    """Frozen TAEF2 with the project's [-1, 1] image convention on both sides."""

    name = "taef2"
    latent_channels = LATENT_CHANNELS

    def __init__(self) -> None:
        super().__init__()
        self.encoder = encoder()
        self.decoder = decoder()
        self.freeze()

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder((images + 1) / 2)

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents) * 2 - 1


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def weight_files(folder: Path) -> list[Path] | None:
    """The encoder and decoder files of ``folder`` in one format (see :data:`FORMATS`)."""
    for suffix in FORMATS:
        files = [folder / f"taef2_{half}{suffix}" for half in HALVES]
        if all(f.is_file() for f in files):
            return files
    return None


def find_weights(path: str | Path | None = None) -> list[Path]:
    """The encoder and decoder files: in ``path`` if given, else in ``$WAVEGMS_TAEF2`` if set,
    else the ones shipped in the package. A folder named but lacking them is an error, never
    a silent fall-back to other weights."""
    if path is not None:
        folder, origin = Path(path).expanduser(), "the given folder"
    elif os.environ.get(ENV_VAR):
        folder, origin = Path(os.environ[ENV_VAR]).expanduser(), f"{ENV_VAR}"
    else:
        folder, origin = BUNDLED_DIR, "the package (reinstall napari-wavegms)"
    files = weight_files(folder)
    if files is None:
        wanted = " or ".join(", ".join(f"taef2_{h}{s}" for h in HALVES) for s in FORMATS)
        raise WeightsNotFoundError(
            f"TAEF2 weights not found in {folder} (from {origin}): it must hold {wanted}"
        )
    return files


def _load_state(file: Path) -> dict[str, torch.Tensor]:
    """The state dict of a pinned TAEF2 file. Its sha256 must be the pinned one; a .pth is
    moreover unpickled with ``weights_only=True`` (tensors and containers, never code), and a
    .safetensors file holds nothing but tensors by design."""
    try:
        data = file.read_bytes()  # hashed and loaded from the same bytes: no swap in between
    except OSError as err:
        raise ModelFileError(f"cannot read TAEF2 weights {file}: {err}") from err
    if hashlib.sha256(data).hexdigest() != SHA256[file.name]:
        raise ModelFileError(
            f"{file} is not the pinned TAEF2 file (sha256 differs); it was not loaded. "
            f"Reinstall napari-wavegms, or use the original {URL.format(file=file.name)}"
        )
    try:
        if file.suffix == ".safetensors":
            state = load_safetensors(data)
        else:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # SafetensorError, UnpicklingError (forbidden content), EOFError
        raise ModelFileError(f"{file} is not a plain TAEF2 weights file: {err}") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{file} does not hold a TAEF2 state dict")
    return {k: v.float() for k, v in state.items()}


def load_taef2(path: str | Path | None = None) -> TAEF2:
    """Frozen TAEF2 from ``path``, ``$WAVEGMS_TAEF2`` or the package (see :func:`find_weights`)."""
    encoder_file, decoder_file = find_weights(path)
    model = TAEF2()
    model.encoder.load_state_dict(_load_state(encoder_file), strict=True)
    model.decoder.load_state_dict(_load_state(decoder_file), strict=True)
    return model.freeze()
