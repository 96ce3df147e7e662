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


@pytest.fixture(autouse=True)
def no_shipped_models(request, tmp_path_factory, monkeypatch) -> None:
    """Tests see only the models they make (small and fast), unless marked ``shipped``: the
    shipped 224-pixel model would otherwise be the default everywhere."""
    if request.node.get_closest_marker("shipped") is None:
        monkeypatch.setattr(
            "wavegms.store.catalogue.SHIPPED_DIR", tmp_path_factory.mktemp("shipped")
        )


def make_disk_pair(rng, size=(40, 48)):
    """A noisy grey image with a dark disk and the disk's 0/255 mask."""
    import numpy as np

    h, w = size
    cy, cx = rng.integers(h // 3, 2 * h // 3), rng.integers(w // 3, 2 * w // 3)
    r = rng.integers(min(h, w) // 6, min(h, w) // 3)
    yy, xx = np.mgrid[:h, :w]
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    image = np.clip(0.6 + 0.1 * rng.standard_normal((h, w)) - 0.4 * mask, 0, 1)
    return (image * 255).astype("uint8"), (mask * 255).astype("uint8")


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """<tmp>/data with images/, masks/ (8 pairs) and split.json (6 train, 2 test)."""
    import json

    import numpy as np
    from skimage.io import imsave

    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    names = [f"case_{i}" for i in range(8)]
    for name in names:
        image, mask = make_disk_pair(rng)
        imsave(root / "images" / f"{name}.png", image, check_contrast=False)
        imsave(root / "masks" / f"{name}.png", mask, check_contrast=False)
    (root / "split.json").write_text(json.dumps({"train": names[:6], "test": names[6:]}))
    return root


@pytest.fixture
def tiny_model_file(tmp_path) -> Path:
    """A valid model file (random weights, 32-pixel input) in the user models folder."""
    import torch

    from wavegms.net.model import ModelConfig, WaveGMS
    from wavegms.store.model_files import save_model
    from wavegms.store.paths import user_models_dir

    torch.manual_seed(0)
    return save_model(WaveGMS(ModelConfig(image_size=32)), user_models_dir() / "tiny")
