"""Fixtures for the napari plugin tests: a private user folder, a tiny real model, images."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# One OpenMP thread: on a small machine shared with other work, torch's spinning worker
# threads made one tiny inference 30-60x slower. Effective only if torch is not yet imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[2]
TINY_SIZE = 64  # model input size of the tests' model: small so CPU runs stay fast


@functools.cache
def qt_problem() -> str | None:
    """Why a Qt application cannot start here (no display, missing xcb libraries), or None.

    Probed in a subprocess: a Qt platform plugin that fails to load aborts the process, which
    would otherwise end the whole test run instead of skipping the GUI tests.
    """
    code = "from qtpy.QtWidgets import QApplication; QApplication([])"
    try:
        probe = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"Qt probe failed: {err}"
    if probe.returncode == 0:
        return None
    lines = [ln for ln in probe.stderr.splitlines() if ln.strip()]
    return "Qt cannot start (install xvfb and Qt's xcb libraries): " + " | ".join(lines[-2:])


def pytest_collection_modifyitems(config, items):
    gui = [i for i in items if {"make_napari_viewer", "qtbot"} & set(i.fixturenames)]
    # In CI the GUI tests must run: a missing X server there is a failure, not a skip.
    if gui and (problem := qt_problem()) and not os.environ.get("CI"):
        for item in gui:
            item.add_marker(pytest.mark.skip(reason=problem))


def taef2_dir() -> Path | None:
    env = os.environ.get("WAVEGMS_TAEF2")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "weights" / "taef2")
    for folder in candidates:
        if (folder / "taef2_encoder.pth").is_file() and (folder / "taef2_decoder.pth").is_file():
            return folder
    return None


@pytest.fixture(autouse=True)
def wavegms_home(tmp_path, monkeypatch, share_graphs) -> Path:
    """Every test gets its own user data folder (models, settings, fine-tune projects); the
    compiled graphs are the session's (``share_graphs``)."""
    home = tmp_path / "home"
    monkeypatch.setenv("WAVEGMS_HOME", str(home))
    share_graphs(home)
    return home


@pytest.fixture(scope="session")
def tiny_model_files(tmp_path_factory) -> tuple[Path, Path]:
    """A random-weight model at 64x64: a valid model file, made once per session."""
    folder = taef2_dir()  # None: the TAEF2 shipped in the package is used
    if folder is not None:
        os.environ.setdefault("WAVEGMS_TAEF2", str(folder))
    import torch

    from wavegms.net.model import ModelConfig, WaveGMS
    from wavegms.store.catalogue import model_paths
    from wavegms.store.model_files import save_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "tiny"
    save_model(WaveGMS(ModelConfig(image_size=TINY_SIZE)), path, metadata={"note": "test"})
    return model_paths(path)


@pytest.fixture
def tiny_model(tiny_model_files, wavegms_home, monkeypatch) -> str:
    """The tiny model installed as the user model ``tiny``; returns its name."""
    from wavegms.store.paths import user_models_dir

    if "WAVEGMS_TAEF2" in os.environ:
        monkeypatch.setenv("WAVEGMS_TAEF2", os.environ["WAVEGMS_TAEF2"])
    target = user_models_dir()
    target.mkdir(parents=True, exist_ok=True)
    for source in tiny_model_files:
        shutil.copyfile(source, target / f"tiny{source.suffix}")
    return "tiny"


@pytest.fixture
def shown_errors(monkeypatch) -> list[str]:
    """Messages the widgets sent to napari's error notification."""
    shown: list[str] = []
    monkeypatch.setattr("wavegms.napari.feedback.show_error", shown.append)
    return shown
