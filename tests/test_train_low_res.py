"""Progressive resizing: the first epochs train at low_res_size, the rest, the validation and
the saved model at image_size; the time budget plans from full-size epochs; resume."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from wavegms.core.errors import InputError
from wavegms.core.progress import CancelToken
from wavegms.training import checkpoint
from wavegms.training import trainer as trainer_module
from wavegms.training.config import TrainConfig
from wavegms.training.progressive import shrink_uint8
from wavegms.training.schedule import EpochTimes, budget_plan
from wavegms.training.trainer import Trainer


def config(data, out, **kw) -> TrainConfig:
    base = dict(
        data_dir=str(data), out_dir=str(out), image_size=32, epochs=3, batch_size=2,
        val_fraction=0.34, warmup_epochs=1, seg_heads=("out",), device="cpu",
        low_res_size=16, low_res_epochs=2,
    )  # fmt: skip
    return TrainConfig(**{**base, **kw})


def watched(run: TrainConfig, progress=None, cancel=None) -> tuple[Trainer, list, list]:
    """A trainer that records (epoch, training?, side) of every image batch E_wave sees and
    (epoch, image side, mask side, z_image side, z_mask side) of every training batch."""
    trainer = Trainer(run, progress, cancel)
    seen: list[tuple[int, bool, int]] = []
    batches: list[tuple[int, ...]] = []
    trainer.model.ewave.register_forward_pre_hook(
        lambda module, args: seen.append((trainer.epoch, module.training, args[0].shape[-1]))
    )
    step = trainer.step

    def recording(batch, decode):
        sides = (batch.images, batch.masks, batch.z_image, batch.z_mask)
        batches.append((trainer.epoch, *(t.shape[-1] for t in sides)))
        assert all(t.shape[-1] == t.shape[-2] for t in sides)
        return step(batch, decode)

    trainer.step = recording
    return trainer, seen, batches


def sizes_by_epoch(seen: list, training: bool) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for epoch, mode, side in seen:
        if mode == training:
            out.setdefault(epoch, set()).add(side)
    return out


@pytest.mark.parametrize("cached_views", [0, 2])
def test_low_res_epochs_train_small_then_full_and_validate_at_full_size(
    tiny_dataset, tmp_path, cached_views
):
    trainer, seen, batches = watched(
        config(tiny_dataset, tmp_path / "run", cached_views=cached_views)
    )
    result = trainer.run()
    assert result.epochs_done == 3 and not result.cancelled
    assert sizes_by_epoch(seen, training=True) == {0: {16}, 1: {16}, 2: {32}}
    assert sizes_by_epoch(seen, training=False) == {0: {32}, 1: {32}, 2: {32}}  # validation
    for epoch, image, mask, z_image, z_mask in batches:
        side = 16 if epoch < 2 else 32
        assert (image, mask, z_image, z_mask) == (side, side, side // 8, side // 8)
    assert [row["train_size"] for row in result.history] == [16, 16, 32]
    assert all(0 <= row["val_dice"] <= 1 for row in result.history)
    assert json.loads((tmp_path / "run" / "best.json").read_text())["model"]["image_size"] == 32
    if cached_views:
        full = load_file(tmp_path / "run" / "views2.safetensors")
        low = load_file(tmp_path / "run" / "views2-16px.safetensors")
        # the low views are the full-size views (the same augmentations) shrunk by area
        images, masks = shrink_uint8(full["image"], full["mask"], 16)
        assert torch.equal(low["image"], images) and torch.equal(low["mask"], masks)
        assert set(low["mask"].unique().tolist()) <= {0, 1}
        assert low["z_image"].shape[-1] == 2 and full["z_image"].shape[-1] == 4
        assert torch.isfinite(low["z_image"].float()).all()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"low_res_size": 24}, "low_res_size must be a multiple of 16 below image_size"),
        ({"low_res_size": 32}, "low_res_size must be a multiple of 16 below image_size"),
        ({"low_res_size": 48}, "low_res_size must be a multiple of 16 below image_size"),
        ({"low_res_size": 0}, "low_res_size must lie between"),
        ({"low_res_size": "112"}, "low_res_size must be a whole number"),
        ({"low_res_size": None, "low_res_epochs": 2}, "low_res_epochs needs low_res_size"),
        ({"low_res_epochs": -1}, "low_res_epochs must lie between"),
    ],
)
def test_bad_low_res_settings_are_one_line_errors(tmp_path, settings, message):
    with pytest.raises(InputError, match=message) as caught:
        config(tmp_path, tmp_path / "run", **settings).validate()
    assert "\n" not in str(caught.value)


def test_budget_planner_times_full_size_epochs_only():
    # 3 low-res epochs of 2.5 s, then 2 full-size ones of 10 s: 27.5 s spent of 60
    times = EpochTimes(mark=0.0)
    for now in (2.5, 5.0, 7.5):
        times.add(now, low_res=True)
    assert budget_plan(60, 7.5, times, 3, 50) is None  # no full-size epoch timed yet
    assert budget_plan(60, 58, times, 3, 50) == 3  # the next epoch would not fit: end here
    times.add(17.5, low_res=False)
    assert budget_plan(60, 17.5, times, 4, 50) is None  # one timed, more fit: time another
    times.add(27.5, low_res=False)
    assert times.per_epoch() == 10
    # 95 % of the 32.5 s left fits 3 more 10 s epochs; an average over all five epochs
    # (5.5 s) would have planned 5 more and ended 20 s over the budget
    assert budget_plan(60, 27.5, times, 5, 50) == 8


def test_a_budget_run_with_low_res_epochs_ends_inside_its_budget(
    tiny_dataset, tmp_path, monkeypatch
):
    # one batch an epoch: 2 s a low-res one, 8 s a full-size one (four times the pixels)
    now = [0.0]
    monkeypatch.setattr(trainer_module, "clock", lambda: now[0])
    run = config(
        tiny_dataset, tmp_path / "run", epochs=50, time_budget_s=40, max_batches_per_epoch=1
    )

    def progress(p) -> None:
        if p.stage == "batch":
            now[0] += 2.0 if trainer.epoch < 2 else 8.0

    trainer = Trainer(run, progress)
    result = trainer.run()
    # low epochs 2 s each, full ones 8 s: after epoch 4, 20 s spent, 95 % of the 20 s left
    # fits 2 more full-size epochs; timed from the first two epochs it would plan 17 more
    decisions = [row for row in result.history if "planned_epochs" in row]
    assert [(row["epoch"], row["planned_epochs"]) for row in decisions] == [(4, 6)]
    assert decisions[0]["budget_seconds_per_epoch"] == pytest.approx(8.0)
    assert result.epochs_done == 6 and now[0] == pytest.approx(36.0) and now[0] <= 40


def test_a_run_resumed_in_its_low_res_phase_goes_on_at_low_res(tiny_dataset, tmp_path):
    short = {"cached_views": 2, "max_batches_per_epoch": 1}
    whole = Trainer(config(tiny_dataset, tmp_path / "whole", **short)).run()
    cancel = CancelToken()

    def stop_after_the_first_epoch(p) -> None:
        if p.stage == "epoch" and p.done == 1:
            cancel.cancel()

    split = config(tiny_dataset, tmp_path / "split", **short)
    part = Trainer(split, stop_after_the_first_epoch, cancel).run()
    assert part.cancelled and part.epochs_done == 1
    trainer, seen, _ = watched(split)
    resumed = trainer.run()
    assert sizes_by_epoch(seen, training=True) == {1: {16}, 2: {32}}
    assert [row["train_size"] for row in resumed.history] == [16, 16, 32]
    for a, b in zip(whole.history, resumed.history, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)  # the same loss curve

    # continued after its low-res phase: full size only, the low views are not made again
    (tmp_path / "split" / "views2-16px.safetensors").unlink()
    trainer, seen, _ = watched(config(tiny_dataset, tmp_path / "split", **short, epochs=4))
    assert trainer.run().history[-1]["train_size"] == 32
    assert sizes_by_epoch(seen, training=True) == {3: {32}}
    assert not (tmp_path / "split" / "views2-16px.safetensors").exists()


def test_runs_without_low_res_keep_their_identity(tiny_dataset, tmp_path):
    plain = config(tiny_dataset, tmp_path, low_res_size=None, low_res_epochs=0).to_dict()
    # as recorded by a version that knew neither setting
    old = {k: v for k, v in plain.items() if not k.startswith("low_res")}
    state = {checkpoint.IDENTITY_KEY: checkpoint.run_identity(old, ["a"], ["b"], None)}
    checkpoint.check_identity(tmp_path, state, checkpoint.run_identity(plain, ["a"], ["b"], None))
    progressive = config(tiny_dataset, tmp_path).to_dict()
    with pytest.raises(InputError, match="low_res_epochs, low_res_size"):
        identity = checkpoint.run_identity(progressive, ["a"], ["b"], None)
        checkpoint.check_identity(tmp_path, state, identity)
