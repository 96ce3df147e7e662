"""finetune(): one request in, a trained model installed under a new name, or a clear refusal."""

from __future__ import annotations

import json

import pytest
import torch

from wavegms.core.errors import InputError
from wavegms.net.model import ModelConfig, WaveGMS
from wavegms.store.catalogue import list_models
from wavegms.store.model_files import save_model
from wavegms.store.paths import user_models_dir
from wavegms.training import trainer as trainer_module
from wavegms.training.finetune import FinetuneRequest, finetune, install_model, train_config


def request(data, run, **kw) -> FinetuneRequest:
    settings = dict(
        data_dir=str(data), base_model="tiny", new_name="mine", out_dir=str(run), device="cpu",
        epochs=2, batch_size=2,
    )  # fmt: skip
    return FinetuneRequest(**{**settings, **kw})


def test_finetune_installs_its_best_epoch(tiny_dataset, tiny_model_file, tmp_path):
    base = tiny_model_file.read_bytes()
    outcome = finetune(request(tiny_dataset, tmp_path / "run", val_every=1))
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    dices = [row["val_dice"] for row in history]
    assert outcome.epochs_done == 2 and not outcome.cancelled
    assert outcome.best_val_dice == max(dices) > 0
    assert outcome.best_epoch == 1 + dices.index(max(dices))
    # every pair of the folder is used (no split file): 8 pairs; a fifth would be 2, but the
    # best epoch is never chosen on fewer than 3 validation images
    assert (outcome.train_images, outcome.val_images) == (5, 3)
    assert outcome.epochs_planned == 2
    assert outcome.installed == list_models()["mine"]
    assert outcome.installed.read_bytes() == (tmp_path / "run" / "best.safetensors").read_bytes()
    kept = json.loads(outcome.installed.with_suffix(".json").read_text())["metadata"]
    assert kept["epoch"] == outcome.best_epoch and kept["val_dice"] == outcome.best_val_dice
    assert tiny_model_file.read_bytes() == base


def test_the_request_sets_the_cadence_and_bf16_of_its_run(tiny_dataset, tiny_model_file, tmp_path):
    defaults = train_config(request(tiny_dataset, tmp_path / "a"), tiny_model_file, "cpu")
    assert (defaults.val_every, defaults.checkpoint_every, defaults.cpu_bf16_ewave) == (4, 4, True)
    assert not defaults.cpu_bf16  # the frozen decoder stays fp32
    chosen = request(tiny_dataset, tmp_path / "b", val_every=1, cpu_bf16=False)
    config = train_config(chosen, tiny_model_file, "cpu")
    assert (config.val_every, config.cpu_bf16_ewave) == (1, False)


def test_validation_is_never_fewer_than_three_images(tiny_dataset, tiny_model_file, tmp_path):
    from wavegms.data.pairs import carve_validation
    from wavegms.training.finetune import validation_fraction

    for pairs in (5, 6, 8, 14, 15, 40):
        names = [f"p{i}" for i in range(pairs)]
        _, val = carve_validation(names, validation_fraction(0.2, pairs), seed=1)
        assert len(val) == max(3, round(0.2 * pairs))
    for name in ("case_5", "case_6", "case_7", "case_4"):  # 4 pairs left: refused
        (tiny_dataset / "images" / f"{name}.png").unlink()
        (tiny_dataset / "masks" / f"{name}.png").unlink()
    with pytest.raises(InputError, match=r"at least 5 image/mask pairs .* found 4"):
        finetune(request(tiny_dataset, tmp_path / "run", epochs=1))


def test_an_existing_name_is_refused_before_any_training(
    tiny_dataset, tiny_model_file, tmp_path, monkeypatch
):
    def no_training(*args, **kwargs):
        raise AssertionError("trained although the name was taken")

    monkeypatch.setattr(trainer_module, "train", no_training)
    with pytest.raises(InputError, match="'tiny' already exists"):
        finetune(request(tiny_dataset, tmp_path / "run", new_name="tiny"))
    assert not (tmp_path / "run").exists()


def test_a_model_that_finds_nothing_is_not_installed(
    tiny_dataset, tiny_model_file, tmp_path, monkeypatch
):
    monkeypatch.setattr(trainer_module.Trainer, "validate", lambda self: 0.0)
    with pytest.raises(InputError, match=r"found nothing .*\(Dice 0\)"):
        finetune(request(tiny_dataset, tmp_path / "run", epochs=1))
    assert "mine" not in list_models()
    assert (tmp_path / "run" / "best.safetensors").is_file()  # the run itself stays


def test_non_finite_weights_are_not_installed(tmp_path):
    torch.manual_seed(0)
    model = WaveGMS(ModelConfig(image_size=32))
    with torch.no_grad():
        next(model.lmm.parameters()).view(-1)[0] = float("nan")
    save_model(model, tmp_path / "run" / "best", metadata={"val_dice": 0.8})
    with pytest.raises(InputError, match="not finite"):
        install_model(tmp_path / "run", "mine")
    assert not any(user_models_dir().glob("mine*"))
