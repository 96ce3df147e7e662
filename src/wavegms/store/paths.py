"""Where the project keeps files on a user's machine.

Everything goes to per-user directories (platformdirs), never to the working directory or
site-packages. ``WAVEGMS_HOME`` moves all of them under one folder (used by tests and CI).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "wavegms"


def _home() -> Path | None:
    home = os.environ.get("WAVEGMS_HOME")
    return Path(home).expanduser() if home else None


def cache_dir() -> Path:
    """Downloaded third-party weights (TAEF2)."""
    home = _home()
    return home / "cache" if home else Path(platformdirs.user_cache_dir(APP))


def data_dir() -> Path:
    """The user's own data: fine-tuned models, collected training pairs, settings."""
    home = _home()
    return home / "data" if home else Path(platformdirs.user_data_dir(APP))


def user_models_dir() -> Path:
    """Models the user trained or fine-tuned, one ``<name>.safetensors`` + ``<name>.json`` each."""
    return data_dir() / "models"


def runs_dir() -> Path:
    """Default parent of training runs (checkpoints, logs) started without an explicit folder."""
    return data_dir() / "runs"
