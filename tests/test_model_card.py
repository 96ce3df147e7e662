"""The model card script: every figure comes from the model's metadata and its evaluation, and
a card never invites a comparison the protocols do not support."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "model_card.py"


@pytest.fixture(scope="module")
def model_card():
    spec = importlib.util.spec_from_file_location("model_card", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _inputs(data_dir: str) -> tuple[dict, dict]:
    history = [
        {"epoch": 1, "loss": 1.2, "val_dice": 0.61, "seconds": 100.0},
        {"epoch": 2, "loss": 0.9, "val_dice": 0.67, "seconds": 90.0},
    ]
    train = {
        "name": "x", "data_dir": data_dir, "split": "train", "epochs": 2, "batch_size": 8,
        "lr": 1e-3, "warmup_epochs": 1, "seed": 1, "cached_views": 2, "augment": True,
        "seg_heads": ["out"], "seg_every": 4,
    }  # fmt: skip
    config = {
        "model": {"backend": "taef2", "latent_channels": 32, "image_size": 224},
        "dtype": "float16",
        "metadata": {
            "config": train, "history": history, "train_wall_seconds": 190.0,
            "train_images": 90, "val_images": 10,
        },
    }  # fmt: skip
    stat = {"mean": 70.0, "std": 10.0}
    summary = {f"{m}_{s}": stat for m in ("dsc", "iou", "hd95") for s in ("224", "native")}
    evaluation = {
        "summary": summary, "n_images": 12, "threshold": 0.5, "overlap_convention": "a",
        "hd95_convention": "b", "std_definition": "c",
    }  # fmt: skip
    return config, evaluation


def test_kvasir_card_says_the_paper_has_no_comparable_figure(model_card):
    config, evaluation = _inputs("kvasir_seg")
    text = model_card.card("kvasir-seg", config, evaluation, None, "a CPU")
    assert "Kvasir-Instrument" in text and "PraNet" in text
    assert "Selected: epoch 2, validation Dice 0.6700" in text
    assert "## Against the paper" not in text


def test_an_epoch_not_validated_shows_a_dash_and_is_never_selected(model_card):
    config, evaluation = _inputs("kvasir_seg")
    history = config["metadata"]["history"]
    history.append({"epoch": 3, "loss": 0.8, "seconds": 80.0})  # val_every: not validated
    text = model_card.card("kvasir-seg", config, evaluation, None, "a CPU")
    assert "Selected: epoch 2, validation Dice 0.6700" in text
    assert "| 3 | 0.8000 | - | 80 |" in text


def test_busi_card_compares_with_the_paper_and_has_no_dataset_note(model_card):
    config, evaluation = _inputs("busi")
    text = model_card.card("busi", config, evaluation, (82.31, 18.46), "a CPU")
    assert "PraNet" not in text
    assert "scores 70.00 (-12.31)" in text


def test_the_card_names_the_file_its_sha256_and_the_precision(model_card):
    config, evaluation = _inputs("busi")
    provenance = {"file": "busi.safetensors", "sha256": "ab" * 32, "precision": "fp32"}
    text = model_card.card("busi", config, evaluation, None, "a CPU", provenance=provenance)
    assert f"- Model file: `busi.safetensors`, sha256 `{'ab' * 32}`." in text
    assert "computed in exact fp32" in text
    int8 = model_card.card("busi", config, evaluation, None, "a CPU", provenance={
        **provenance, "precision": "int8"})  # fmt: skip
    assert "computed in int8 (not exact" in int8


@pytest.mark.shipped
def test_each_shipped_card_belongs_to_the_shipped_bytes():
    """A shipped card names the sha256 of the very file it describes: its scores are not
    carried over to other weights (see wavegms.export.card)."""
    from wavegms.package_data import model_card as shipped_card
    from wavegms.runtime.graph_cache import file_sha256
    from wavegms.store.catalogue import shipped_models

    for name, weights in shipped_models().items():
        text = shipped_card(name)
        assert text is not None, name
        assert f"sha256 `{file_sha256(weights)}`" in text, name


def test_a_warm_restart_card_names_its_first_recipe_and_the_warm_one(model_card):
    config, evaluation = _inputs("kvasir_seg")
    train = config["metadata"]["config"]
    first = model_card.card("kvasir-seg", config, evaluation, None, "a CPU")
    assert [line for line in first.splitlines() if line.startswith("wavegms train")] == [
        "wavegms train --config configs/kvasir_seg_cpu.yaml   # configs/kvasir_seg.yaml on a GPU"
    ]
    train.update(init_model="kvasir-seg", name="kvasir-seg-warm")  # the shipped model, again
    text = model_card.card("kvasir-seg", config, evaluation, None, "a CPU")
    recipes = [line.split()[3] for line in text.splitlines() if line.startswith("wavegms train")]
    assert recipes == ["configs/kvasir_seg_cpu.yaml", "configs/kvasir_seg_cpu_warm.yaml"]
