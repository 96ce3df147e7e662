"""A run folder's files: the resumable ``last.*``, the ``best.*`` model and ``history.json``.

``last.safetensors`` holds everything needed to resume exactly: the trainable weights
(``model.*``), the optimiser moments (``optim.<index>.<key>``), the random-number states
(``rng.*``), and in its header the resume state (epoch, best Dice, history, the epochs a time
budget fixed, config, optimiser settings), also written to ``last.json`` for people.
``best.safetensors`` + ``best.json`` is an ordinary model file. Every file is written
atomically, so stopping or killing a run at any moment leaves the previous checkpoint intact.

The resume state also records what the run was started with (:func:`run_identity`: the data
folder, split, images, settings and base model); :func:`check_identity` refuses to resume a
run folder with anything else, so a run never goes on with other data or under another name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from wavegms.core.errors import InputError, ModelFileError
from wavegms.core.files import atomic_write, file_sha256, read_json, write_json
from wavegms.net.model import WaveGMS
from wavegms.store import model_files
from wavegms.store.catalogue import model_paths
from wavegms.training.config import TrainConfig

STATE_VERSION = 1
STATE_KEY = "wavegms_train_state"  # the resume state's key in last.safetensors' header
IDENTITY_KEY = "identity"  # what the run was started with, in the resume state
#: settings that say where, how or how long a run computes, not what it learns: they may
#: change on resume (a finished run may be continued for more epochs, ``train --epochs``)
RUNTIME_SETTINGS = (
    "device", "out_dir", "backend_path", "time_budget_s", "budget_cpu", "epochs", "channels_last"
)  # fmt: skip
#: settings recorded as entries of their own (paths as real paths, the base model as a hash)
OWN_ENTRIES = ("data_dir", "split_file", "split", "init_model")


def _settings(config: dict) -> dict:
    skip = (*RUNTIME_SETTINGS, *OWN_ENTRIES)
    return {k: v for k, v in config.items() if k not in skip}


def run_identity(
    config: dict,
    train_names: Sequence[str],
    val_names: Sequence[str],
    base_weights: Path | None,
) -> dict:
    """What a run is: its data folder (real path), split file and split, a hash of its
    training and validation image names, its settings and its base model's file hash."""
    names = json.dumps([list(train_names), list(val_names)]).encode("utf-8")
    split_file = config.get("split_file")
    return {
        "data_dir": str(Path(config["data_dir"]).resolve()),
        "split_file": str(Path(split_file).resolve()) if split_file else None,
        "split": config.get("split"),
        "images": hashlib.sha256(names).hexdigest(),
        "settings": _settings(config),
        "base_model": file_sha256(base_weights) if base_weights else None,
    }


_WHAT = {
    "data_dir": "data folder",
    "split_file": "split file",
    "split": "split",
    "images": "training/validation images",
    "base_model": "base model",
}


def check_identity(run_dir: Path, state: dict, identity: dict) -> None:
    """Refuse to resume the run in ``run_dir`` (resume ``state``) when it was started with
    anything other than ``identity``. A checkpoint older than identities has its settings
    compared."""
    recorded = state.get(IDENTITY_KEY)
    if recorded is None:
        recorded = {"settings": _settings(state.get("config", {}))}
    differ = []
    for key, value in recorded.items():
        if key == "settings":
            # a setting added after the run started was, for that run, at its default
            value = {**_settings(TrainConfig(data_dir="").to_dict()), **value}
            settings = identity["settings"]
            keys = sorted(set(value) | set(settings))
            differ += [k for k in keys if json.dumps(value.get(k)) != json.dumps(settings.get(k))]
        elif json.dumps(value) != json.dumps(identity.get(key)):
            differ.append(_WHAT.get(key, key))
    if differ:
        raise InputError(
            f"the run folder {run_dir} holds a run started with different "
            f"{', '.join(differ)}; it is not resumed with these: to start fresh choose another "
            "run folder (--out) or delete that one"
        )


def save_last(
    run_dir: Path,
    model: WaveGMS,
    optimizer: torch.optim.Optimizer,
    rng_states: dict[str, torch.Tensor],
    state: dict,
) -> None:
    """Write ``last.safetensors`` (tensors + resume state) and then ``last.json``."""
    tensors = {f"model.{k}": v for k, v in model.trainable_state_dict().items()}
    opt = optimizer.state_dict()
    for idx, moments in opt["state"].items():
        for key, value in moments.items():
            tensors[f"optim.{idx}.{key}"] = torch.as_tensor(value).detach().cpu()
    tensors.update(rng_states)
    tensors = {k: v.contiguous().cpu() for k, v in tensors.items()}
    meta = {"state_version": STATE_VERSION, **state, "param_groups": opt["param_groups"]}
    # The resume state also travels inside the weights file, so that one atomic write holds
    # the whole checkpoint: a run killed between the two files still resumes consistently.
    # last.json is for people (and for versions that only read it).
    header = {STATE_KEY: json.dumps(meta)}
    atomic_write(run_dir / "last.safetensors", lambda t: save_file(tensors, t, metadata=header))
    write_json(run_dir / "last.json", meta)


def load_last(
    run_dir: Path, model: WaveGMS, optimizer: torch.optim.Optimizer
) -> tuple[dict, dict[str, torch.Tensor]] | None:
    """Restore weights and optimiser from ``last.*``; returns (resume state, the other tensors:
    RNG states, the weight average), or None when the run has no checkpoint yet."""
    checkpoint = _read_last(run_dir)
    if checkpoint is None:
        return None
    meta, tensors = checkpoint
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(model_state, strict=False)
    moments: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, key = k.split(".", 2)
            moments.setdefault(int(idx), {})[key] = v
    optimizer.load_state_dict({"state": moments, "param_groups": meta["param_groups"]})
    return meta, {k: v for k, v in tensors.items() if not k.startswith(("model.", "optim."))}


def _damaged(weights: Path, err: Exception) -> ModelFileError:
    return ModelFileError(
        f"the checkpoint {weights} is damaged ({err}); delete last.safetensors and "
        "last.json in that folder to start the run again"
    )


def read_state(run_dir: Path) -> dict | None:
    """The resume state of ``last.*`` (no tensors read), or None without a checkpoint."""
    meta_path, weights = run_dir / "last.json", run_dir / "last.safetensors"
    if not weights.exists():
        return None
    try:
        with safe_open(weights, "pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise _damaged(weights, err) from err
    if STATE_KEY in header:
        return json.loads(header[STATE_KEY])
    # a checkpoint written before the state moved into the weights file
    return read_json(meta_path) if meta_path.exists() else None


def _read_last(run_dir: Path) -> tuple[dict, dict[str, torch.Tensor]] | None:
    state = read_state(run_dir)
    if state is None:
        return None
    weights = run_dir / "last.safetensors"
    try:
        return state, load_file(weights)
    except (SafetensorError, OSError) as err:
        raise _damaged(weights, err) from err


def save_best(run_dir: Path, model: WaveGMS, metadata: dict) -> None:
    """The best epoch so far, as an ordinary model file ``best.safetensors`` + ``best.json``."""
    model_files.save_model(model, run_dir / "best", metadata=metadata, overwrite=True)


def best_model_path(run_dir: Path) -> Path | None:
    weights = model_paths(run_dir / "best")[0]
    return weights if weights.exists() else None


def write_history(run_dir: Path, history: list[dict]) -> None:
    write_json(run_dir / "history.json", history)
