"""Model files: ``<name>.safetensors`` (weights) beside ``<name>.json`` (config, provenance).

Nothing is pickled, so loading a model file never runs code. Files are written to a temporary
name and renamed, so an interrupted save leaves the previous file intact.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from wavegms.core.errors import InputError, ModelFileError
from wavegms.core.files import atomic_write, file_sha256
from wavegms.net.model import ModelConfig, WaveGMS
from wavegms.store.catalogue import (
    FORMAT,
    FORMAT_VERSION,
    model_paths,
    model_section,
    read_config,
    resolve_model,
)


def save_model(
    model: WaveGMS,
    path: str | Path,
    *,
    metadata: dict | None = None,
    half: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write weights and config; returns the weights path. ``half`` stores fp16 (smaller)."""
    weights, config_path = model_paths(path)
    if not overwrite and (weights.exists() or config_path.exists()):
        raise FileExistsError(f"model {weights.with_suffix('')} exists; not overwriting it")
    state = {
        k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in model.trainable_state_dict().items()
    }
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model.config.to_dict(),
        "dtype": "float16" if half else "float32",
        "metadata": metadata or {},
    }

    def write_weights(tmp: Path) -> None:
        save_file(state, tmp)
        config[WEIGHTS_SHA256] = file_sha256(tmp)  # of exactly the bytes that are renamed

    atomic_write(weights, write_weights, ".safetensors")
    # Config last: a model is complete once its JSON exists beside its weights.
    atomic_write(config_path, lambda tmp: tmp.write_text(json.dumps(config, indent=2)), ".json")
    return weights


#: the config key that records the sha256 of the weights file
WEIGHTS_SHA256 = "weights_sha256"


def _check_digest(config: dict, weights: Path) -> None:
    """The weights must be the bytes the config was saved with: a weights file changed since
    (rounded to int8, damaged, swapped) is refused rather than segmenting in silence. A config
    without a digest (saved before models recorded one) is taken as it is."""
    recorded = config.get(WEIGHTS_SHA256)
    if recorded is None:
        return
    if not isinstance(recorded, str) or len(recorded) != 64:
        raise ModelFileError(f"{weights.with_suffix('.json')}: bad {WEIGHTS_SHA256} {recorded!r}")
    if file_sha256(weights) != recorded.lower():
        raise ModelFileError(
            f"{weights} is not the weights file its config records (sha256 differs): it was "
            "changed or damaged since the model was saved; restore it, or save the model again"
        )


def _model_config(config: dict, config_path: Path) -> ModelConfig:
    """The ``model`` section as a :class:`ModelConfig`: its sizes checked by the catalogue,
    its keys and backend here (where the backends are known), so that a damaged or foreign
    config fails with the file's name, not deep inside torch later."""
    from wavegms.net.autoencoders import BACKENDS

    section = model_section(config, config_path)
    try:
        model_config = ModelConfig(**section)
    except (TypeError, InputError) as err:  # unknown keys; sizes out of range
        raise ModelFileError(f"{config_path}: bad model section: {err}") from err
    if model_config.backend not in BACKENDS:
        raise ModelFileError(
            f"{config_path}: bad model section: unknown backend {model_config.backend!r} "
            f"(known: {BACKENDS})"
        )
    return model_config


def _check_finite(state: dict[str, torch.Tensor], weights: Path) -> None:
    """A weight that is NaN or infinite (a diverged or damaged model) would make every mask
    meaningless, and the traced CPU graph may even turn it into plausible-looking numbers:
    such a file is refused, naming its first bad tensor."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ModelFileError(
                f"{weights} holds weights that are not finite (NaN or infinite, first in "
                f"{key}); the model is damaged or its training diverged: retrain or restore it"
            )


def load_model(path: str | Path, device: str | torch.device = "cpu") -> WaveGMS:
    """Build a model from its files, checking the weights against the config. The frozen
    autoencoder is not attached (see :func:`load_segmentation_model`)."""
    weights, _ = model_paths(path)
    config = read_config(path)
    model_config = _model_config(config, weights.with_suffix(".json"))
    if weights.suffix != ".safetensors" or not weights.is_file():
        raise ModelFileError(f"model weights {weights} not found")
    try:
        state = load_file(weights)
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(f"{weights} is not a readable safetensors file: {err}") from err
    _check_digest(config, weights)  # after the parse: a truncated file says so first
    _check_finite(state, weights)
    model = WaveGMS(model_config)
    expected = model.trainable_state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    bad_shape = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or bad_shape:
        raise ModelFileError(
            f"{weights} does not match its config {model_config}: "
            f"{len(missing)} missing, {len(unexpected)} unexpected, {len(bad_shape)} wrong-shape "
            f"tensors (first: {(missing + unexpected + bad_shape)[:3]})"
        )
    model.load_state_dict({k: v.float() for k, v in state.items()})
    model.metadata = config.get("metadata", {})
    return model.to(device).eval()


def load_segmentation_model(name_or_path: str | Path, device: str = "auto", backend_path=None):
    """Load a model and attach its frozen autoencoder, ready for ``predict_soft``."""
    from wavegms.core.devices import resolve_device
    from wavegms.net.autoencoders import load_autoencoder

    path = resolve_model(name_or_path)
    model = load_model(path)
    try:
        model.attach(load_autoencoder(model.config.backend, backend_path))
    except ValueError as err:  # e.g. latent channels that the backend does not have
        raise ModelFileError(f"{path}: {err}") from err
    return model.to(resolve_device(device)).eval()
