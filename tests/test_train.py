"""The training engine: checkpoints, exact resume, cancel, validation, fine-tuning."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from wavegms.core.errors import InputError
from wavegms.core.progress import CancelToken
from wavegms.store.model_files import load_model
from wavegms.training.trainer import TrainConfig, Trainer, lr_factor, train


def config(data, out, **kw) -> TrainConfig:
    base = dict(
        data_dir=str(data),
        out_dir=str(out),
        image_size=32,
        epochs=3,
        batch_size=2,
        val_fraction=0.34,
        warmup_epochs=1,
        seg_heads=("out",),
        device="cpu",
    )
    return TrainConfig(**{**base, **kw})


def test_lr_schedule_warms_up_then_decays_to_zero():
    f = [lr_factor(e, 10, 2) for e in range(10)]
    assert f[:2] == [0.5, 1.0]
    assert all(a >= b for a, b in itertools.pairwise(f[1:]))
    assert f[-1] == pytest.approx(0.5 * (1 + torch.cos(torch.tensor(7 / 8 * torch.pi)).item()))


def test_run_writes_checkpoints_and_a_loadable_best_model(tiny_dataset, tmp_path):
    result = train(config(tiny_dataset, tmp_path / "run"))
    run = tmp_path / "run"
    assert result.epochs_done == 3 and not result.cancelled
    for name in ("last.safetensors", "last.json", "best.safetensors", "best.json", "history.json"):
        assert (run / name).is_file(), name
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert all(0 <= row["val_dice"] <= 1 and row["loss"] > 0 for row in history)
    best = load_model(result.best_model)
    assert best.metadata["val_dice"] == pytest.approx(max(r["val_dice"] for r in history))
    assert not list(run.glob(".*"))  # no temporary files left behind


def test_interrupted_run_resumes_on_the_same_loss_curve(tiny_dataset, tmp_path):
    whole = train(config(tiny_dataset, tmp_path / "whole"))

    cancel = CancelToken()

    def stop_after_first_epoch(p):
        if p.stage == "epoch" and p.done == 1:
            cancel.cancel()

    part = train(config(tiny_dataset, tmp_path / "split"), stop_after_first_epoch, cancel)
    assert part.cancelled and part.epochs_done == 1
    resumed = train(config(tiny_dataset, tmp_path / "split"))
    assert resumed.epochs_done == 3
    for a, b in zip(whole.history, resumed.history, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["val_dice"] == pytest.approx(b["val_dice"], abs=1e-6)


def test_cancel_keeps_the_last_completed_checkpoint(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(config(tiny_dataset, run, epochs=1))
    before = (run / "last.safetensors").read_bytes()
    cancel = CancelToken()
    cancel.cancel()
    result = train(config(tiny_dataset, run, epochs=2), cancel=cancel)
    assert result.cancelled and result.epochs_done == 1
    assert (run / "last.safetensors").read_bytes() == before


def test_only_ewave_and_lmm_train(tiny_dataset, tmp_path):
    trainer = Trainer(config(tiny_dataset, tmp_path / "run"))
    frozen = [p for p in trainer.model.autoencoder.parameters()]
    before = [p.clone() for p in frozen]
    trainer.run()
    assert all(torch.equal(a, b) for a, b in zip(before, frozen, strict=True))
    n_train = sum(p.numel() for p in trainer.params)
    assert n_train == sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)


def test_cached_views_schedule_trains_and_resumes(tiny_dataset, tmp_path):
    result = train(config(tiny_dataset, tmp_path / "run", epochs=2, cached_views=2, seg_every=2))
    assert result.epochs_done == 2
    assert (tmp_path / "run" / "views2.safetensors").is_file()


def test_fine_tune_from_an_existing_model_never_touches_it(tiny_dataset, tmp_path, tiny_model_file):
    before = tiny_model_file.read_bytes()
    result = train(config(tiny_dataset, tmp_path / "ft", epochs=1, init_model="tiny"))
    assert result.best_model is not None
    assert tiny_model_file.read_bytes() == before


def test_bad_settings_are_clear_errors(tiny_dataset, tmp_path):
    (tmp_path / "c.yaml").write_text("data_dir: x\nepochs: 2\nwrong_key: 1\n")
    with pytest.raises(InputError, match="wrong_key"):
        TrainConfig.from_yaml(tmp_path / "c.yaml")
    with pytest.raises(InputError, match="multiple of 8"):
        config(tiny_dataset, tmp_path, image_size=30).validate()
    with pytest.raises(InputError, match="seg_heads"):
        config(tiny_dataset, tmp_path, seg_heads=("level3",)).validate()
