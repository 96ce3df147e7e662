"""The shipped model: listed, the default, loads from its safetensors file, and segments
real BUSI test images about as well as its model card says."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wavegms.data.images import read_image, read_mask
from wavegms.inference.segmenter import Segmenter
from wavegms.scoring.metrics import score
from wavegms.store.catalogue import default_model, read_config, resolve_model, shipped_models

pytestmark = pytest.mark.shipped


def test_busi_is_shipped_and_the_default():
    assert "busi" in shipped_models() and default_model() == "busi"
    config = read_config(resolve_model("busi"))
    assert config["model"] == {"backend": "taef2", "latent_channels": 32, "image_size": 224}
    assert config["dtype"] == "float16"
    # No path on the training machine travels with the shipped file.
    assert "/work" not in json.dumps(config) and "data_dir" not in config["metadata"]


@pytest.mark.data
def test_busi_segments_busi_test_images(data_root):
    folder = data_root / "busi"
    names = json.loads((folder / "split.json").read_text())["test"][:6]
    segmenter = Segmenter.load("busi", device="cpu")
    dice = []
    for name in names:
        image = read_image(next((folder / "images").glob(f"{name}.*")))
        truth = read_mask(next((folder / "masks").glob(f"{name}.*")))
        binary, soft = segmenter.segment(image)
        assert binary.shape == truth.shape and soft.dtype == np.float32
        dice.append(score(binary, truth)["dsc"])
    # The card reports 75.6 % mean test DSC over 130 images; these 6 must not be near chance.
    assert np.mean(dice) > 0.6, dice
