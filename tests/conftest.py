"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared research data folder (``$WAVEGMS_DATA``, else ``<repo>/../shared/data``).

    It may not exist (e.g. on CI); tests that need it skip themselves when it is missing.
    """
    env = os.environ.get("WAVEGMS_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def taef2_dir() -> Path:
    """The genuine TAEF2 weights (``$WAVEGMS_TAEF2``, else ``<repo>/../shared/weights/taef2``)."""
    path = Path(os.environ.get("WAVEGMS_TAEF2") or SHARED / "weights" / "taef2")
    if not (path / "taef2_decoder.pth").is_file():
        pytest.fail(f"TAEF2 weights not found in {path}: set WAVEGMS_TAEF2 (see README)")
    return path


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory, monkeypatch, taef2_dir) -> Path:
    """Every test gets its own user data/cache folders and the shared TAEF2 weights, so no test
    reads or writes the real user's models, settings or cache."""
    home = tmp_path_factory.mktemp("wavegms_home")
    monkeypatch.setenv("WAVEGMS_HOME", str(home))
    monkeypatch.setenv("WAVEGMS_TAEF2", str(taef2_dir))
    return home
