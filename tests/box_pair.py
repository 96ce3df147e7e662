"""Box mode's default pair for tests: ``busi-box`` and ``busi`` installed as user models (the
shipped ones are hidden from tests), two tiny models with different weights."""

from __future__ import annotations

import shutil
from pathlib import Path


def install(name: str, source: Path) -> None:
    """The model file ``source`` (``.safetensors`` beside its ``.json``) as user model
    ``name``."""
    from wavegms.store.paths import user_models_dir

    for suffix in (".safetensors", ".json"):
        shutil.copyfile(source.with_suffix(suffix), user_models_dir() / f"{name}{suffix}")


def install_pair(tiny_model_file: Path) -> dict[str, str]:
    """``busi-box`` (the tiny model) and ``busi`` (another tiny model: other weights);
    returns each one's weights digest by name."""
    import torch

    from wavegms.inference.folder_records import digest
    from wavegms.net.model import ModelConfig, WaveGMS
    from wavegms.store.model_files import save_model
    from wavegms.store.paths import user_models_dir

    install("busi-box", tiny_model_file)
    torch.manual_seed(1)
    save_model(WaveGMS(ModelConfig(image_size=32)), user_models_dir() / "busi")
    return {n: digest(user_models_dir() / f"{n}.safetensors") for n in ("busi-box", "busi")}


def scan_folder(folder: Path) -> Path:
    """``folder/in`` with one 40 x 48 noise image, ``scan.png``."""
    import numpy as np
    from skimage.io import imsave

    src = folder / "in"
    src.mkdir()
    imsave(src / "scan.png", np.random.default_rng(3).integers(0, 255, (40, 48), dtype=np.uint8))
    return src


def records(out: Path) -> tuple[dict, dict]:
    """The row of ``out/results.csv`` and the record in the mask PNG of ``scan``."""
    import csv
    import json

    from PIL import Image

    from wavegms.inference.folder_records import PNG_KEY

    with open(out / "results.csv", newline="") as f:
        (row,) = csv.DictReader(f)
    with Image.open(out / "masks" / "scan.png") as im:
        return row, json.loads(im.text[PNG_KEY])
