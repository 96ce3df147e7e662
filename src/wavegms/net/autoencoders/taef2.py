"""TAEF2, the tiny autoencoder for the FLUX.2 latent space (32 channels at 1/8 resolution).

The original checkpoints (madebyollin/taesd, MIT) are fp16 state dicts of two ``nn.Sequential``
networks. The modules below reproduce that layout index for index so the files load with strict
key checks. TAESD's layout plus a "pool" branch on the blocks at 1/8 resolution, which diffusers'
``AutoencoderTiny`` has no slot for, hence this module.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import torch
from torch import nn

from wavegms.core.errors import ModelFileError, WeightsNotFoundError
from wavegms.net.autoencoders import FrozenAutoencoder
from wavegms.store.paths import cache_dir

LATENT_CHANNELS = 32
COMMIT = "5cccb12dc72074a4be35680c3b108548a7c69978"
URL = "https://raw.githubusercontent.com/madebyollin/taesd/" + COMMIT + "/{file}"
SHA256 = {
    "taef2_encoder.pth": "10a4e1021e89d7551eaf161352da8dbd0b1aa83872ae28b150c1df1ce2f147b6",
    "taef2_decoder.pth": "0a44a31e1ae59eb9dbf9359d24942fd3ef5928162c1800d97a28c61d51be0ab5",
}
ENV_VAR = "WAVEGMS_TAEF2"


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


def _candidate_dirs(path: str | Path | None) -> list[Path]:
    if path is not None:
        return [Path(path).expanduser()]
    dirs = []
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]).expanduser())
    dirs.append(cache_dir() / "taef2")
    return dirs


def find_weights(path: str | Path | None = None, *, download: bool = True) -> Path:
    """The folder holding both TAEF2 files: ``path``, ``$WAVEGMS_TAEF2``, the user cache, or
    a download into the user cache (checked against the pinned sha256)."""
    candidates = _candidate_dirs(path)
    for folder in candidates:
        if all((folder / f).is_file() for f in SHA256):
            return folder
    if path is not None:
        raise WeightsNotFoundError(
            f"TAEF2 weights not found in {candidates[0]}: it must hold {', '.join(SHA256)}"
        )
    target = cache_dir() / "taef2"
    if not download:
        raise WeightsNotFoundError(_missing_message(target))
    for file in SHA256:
        if not (target / file).is_file():
            _download(file, target)
    return target


def _missing_message(target: Path) -> str:
    urls = "\n".join(f"  {URL.format(file=f)}" for f in SHA256)
    return (
        "TAEF2 weights are needed and could not be downloaded. Download these two files:\n"
        f"{urls}\ninto {target} (or any folder named by the {ENV_VAR} environment variable)."
    )


def _download(file: str, target: Path) -> None:
    try:
        target.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{file}.", suffix=".part")
    except OSError as err:
        raise WeightsNotFoundError(
            f"{_missing_message(target)}\n(cannot write into {target}: {err})"
        ) from err
    os.close(fd)
    try:
        try:
            urllib.request.urlretrieve(URL.format(file=file), tmp)
        except (urllib.error.URLError, OSError) as err:
            raise WeightsNotFoundError(
                f"{_missing_message(target)}\n(download failed: {err})"
            ) from err
        if sha256(Path(tmp)) != SHA256[file]:
            raise WeightsNotFoundError(f"downloaded {file} does not match its pinned sha256")
        os.replace(tmp, target / file)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _load_state(file: Path) -> dict[str, torch.Tensor]:
    """The state dict of a pinned TAEF2 file. Two locks against a swapped, malicious file:
    its sha256 must be the pinned one, and even then it is unpickled with
    ``weights_only=True``, which builds tensors and containers but never calls code."""
    try:
        data = file.read_bytes()  # hashed and loaded from the same bytes: no swap in between
    except OSError as err:
        raise ModelFileError(f"cannot read TAEF2 weights {file}: {err}") from err
    if hashlib.sha256(data).hexdigest() != SHA256[file.name]:
        raise ModelFileError(
            f"{file} is not the pinned TAEF2 file (sha256 differs); it was not loaded. "
            f"Replace it with {URL.format(file=file.name)}"
        )
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError for forbidden content, RuntimeError, EOFError
        raise ModelFileError(f"{file} is not a plain TAEF2 weights file: {err}") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{file} does not hold a TAEF2 state dict")
    return {k: v.float() for k, v in state.items()}


def load_taef2(path: str | Path | None = None, *, download: bool = True) -> TAEF2:
    folder = find_weights(path, download=download)
    model = TAEF2()
    model.encoder.load_state_dict(_load_state(folder / "taef2_encoder.pth"), strict=True)
    model.decoder.load_state_dict(_load_state(folder / "taef2_decoder.pth"), strict=True)
    return model.freeze()
