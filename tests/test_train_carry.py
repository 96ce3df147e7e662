"""Training that outlives the machine: the carried checkpoint, the weight average, the re-warm,
settings added after a run started, and the schedule's pieces."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from wavegms.core import cpu_features
from wavegms.core.errors import InputError
from wavegms.training import carry, checkpoint
from wavegms.training.config import TrainConfig
from wavegms.training.ema import WeightAverage
from wavegms.training.precision import frozen_autocast, trainable_autocast
from wavegms.training.schedule import budget_epochs, rewarm_factor
from wavegms.training.trainer import Trainer, train


def config(data, out, **kw) -> TrainConfig:
    base = dict(
        data_dir=str(data), out_dir=str(out), image_size=32, epochs=2, batch_size=2,
        val_fraction=0.34, warmup_epochs=1, seg_heads=("out",), device="cpu",
    )  # fmt: skip
    return TrainConfig(**{**base, **kw})


def test_weight_average_follows_the_weights_and_is_applied_only_inside_its_block():
    model = torch.nn.Linear(3, 2)
    average = WeightAverage(model, decay=0.5)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(2.0)
    average.update()  # halfway from the start to the new weights
    with average.applied():
        assert torch.allclose(model.weight, start + 1.0)
    assert torch.allclose(model.weight, start + 2.0)
    saved = average.tensors()
    fresh = WeightAverage(model, decay=0.5)
    assert fresh.load(saved) and torch.allclose(fresh.shadow[0], start + 1.0)
    assert not fresh.load({})  # a run without an average: the average restarts at the weights
    with pytest.raises(ValueError):
        WeightAverage(model, decay=1.0)


def test_a_run_with_an_average_validates_and_saves_the_average(tiny_dataset, tmp_path):
    result = train(config(tiny_dataset, tmp_path / "run", ema_decay=0.9))
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert "moving average" in best["metadata"]["weights"]
    tensors = load_file(tmp_path / "run" / "last.safetensors")
    ema = {k for k in tensors if k.startswith("ema.")}
    assert ema and len(ema) == sum(1 for k in tensors if k.startswith("model."))
    assert result.epochs_done == 2


def test_carried_checkpoint_seeds_a_new_machine_and_refuses_other_settings(tiny_dataset, tmp_path):
    first = config(tiny_dataset, tmp_path / "machine1", ema_decay=0.9)
    train(first)
    carried = carry.write_carried(tmp_path / "machine1", tmp_path / "repo" / "run.safetensors")
    assert carried is not None
    tensors = load_file(carried)
    assert all(v.dtype == torch.float16 for k, v in tensors.items() if k.startswith("model."))
    assert carry.carried_state(carried)["epoch"] == 2 and "epoch 2" in carry.carried_summary(
        carried
    )

    # A new machine: an empty run folder is seeded, and the run goes on for two more epochs
    # from the carried weights, its learning rate re-warmed (no optimiser moments carried).
    again = config(tiny_dataset, tmp_path / "machine2", ema_decay=0.9, epochs=4)
    assert carry.seed_run(carried, tmp_path / "machine2")
    assert not carry.seed_run(carried, tmp_path / "machine2")  # not behind it any more
    trainer = Trainer(again)
    assert trainer.resume() and trainer.epoch == 2 and trainer.rewarm_steps > 0
    weights = load_file(tmp_path / "machine1" / "last.safetensors")
    for name, value in trainer.model.trainable_state_dict().items():
        assert torch.allclose(value, weights[f"model.{name}"].half().float())
    result = trainer.run()
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4]

    # Other settings: the seeded folder is refused, as any checkpoint would be.
    other = config(tiny_dataset, tmp_path / "machine3", ema_decay=0.9, lr=0.5)
    carry.seed_run(carried, tmp_path / "machine3")
    with pytest.raises(InputError, match="lr"):
        Trainer(other).resume()


def test_a_carried_run_whose_best_is_its_last_epoch_keeps_a_best_model(tiny_dataset, tmp_path):
    # One epoch: the best is the last epoch, which the carried file does not hold twice.
    train(config(tiny_dataset, tmp_path / "machine1", ema_decay=0.9, epochs=1))
    carried = carry.write_carried(tmp_path / "machine1", tmp_path / "repo" / "run.safetensors")
    assert not any(k.startswith(carry.BEST) for k in load_file(carried))
    assert carry.seed_run(carried, tmp_path / "machine2")
    assert checkpoint.best_model_path(tmp_path / "machine2") is None
    result = train(config(tiny_dataset, tmp_path / "machine2", ema_decay=0.9, epochs=1))
    assert result.best_model is not None
    shipped = load_file(tmp_path / "machine1" / "best.safetensors")
    seeded = load_file(result.best_model)
    assert shipped.keys() == seeded.keys()
    for name, value in shipped.items():  # the average's weights, as carried in fp16
        assert torch.allclose(seeded[name].float(), value.half().float(), atol=1e-3)
    best = json.loads((tmp_path / "machine2" / "best.json").read_text())["metadata"]
    assert best["epoch"] == 1 and best["val_dice"] == result.best_val_dice


def test_a_setting_added_later_at_its_default_does_not_block_resume(tiny_dataset, tmp_path):
    run = config(tiny_dataset, tmp_path / "run", epochs=1)
    train(run)
    last = tmp_path / "run" / "last.safetensors"
    state = checkpoint.read_state(tmp_path / "run")
    # as written by a version that knew neither setting
    for key in ("ema_decay", "cpu_bf16"):
        del state[checkpoint.IDENTITY_KEY]["settings"][key]
    checkpoint.check_identity(tmp_path / "run", state, Trainer(run).identity)
    changed = config(tiny_dataset, tmp_path / "run", epochs=1, ema_decay=0.5)
    with pytest.raises(InputError, match="ema_decay"):
        checkpoint.check_identity(tmp_path / "run", state, Trainer(changed).identity)
    assert last.is_file()


def test_rewarm_and_budget_arithmetic():
    assert [rewarm_factor(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert rewarm_factor(0, 0) == 1.0
    # 10 s epochs, 2 timed, 25 s of a 45 s budget left: 95 % of it fits 2 more epochs
    assert budget_epochs(45, 20, 20, 2, 2, 50) == 4
    assert budget_epochs(45, 10, 10, 1, 1, 50) is None  # keeps timing while epochs fit


def test_cpu_bf16_follows_the_cpu_flags(monkeypatch):
    run = TrainConfig(data_dir="d", cpu_bf16=True)
    cpu = torch.device("cpu")
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: frozenset({"avx512f"}))
    with frozen_autocast(cpu, run):
        assert not torch.is_autocast_enabled("cpu")
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    with frozen_autocast(cpu, run):
        assert torch.is_autocast_enabled("cpu")
    with frozen_autocast(cpu, TrainConfig(data_dir="d")):
        assert not torch.is_autocast_enabled("cpu")  # off unless asked for
    with trainable_autocast(cpu, run):
        assert not torch.is_autocast_enabled("cpu")  # cpu_bf16 is the frozen autoencoder's alone
    with trainable_autocast(cpu, TrainConfig(data_dir="d", cpu_bf16_ewave=True)):
        assert torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize("decoder_bf16", [True, False])
def test_a_bf16_run_trains_and_validates_the_exact_model(
    tiny_dataset, tmp_path, monkeypatch, decoder_bf16
):
    # bf16 arithmetic runs on any CPU (slowly without the units): pretend the units are there.
    # E_wave in bf16 with the decoder in fp32 (the fine-tune default with the Dice loss on)
    # once fed bf16 latents to fp32 convolutions: a crash.
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    run = config(
        tiny_dataset, tmp_path / "run", epochs=1, cpu_bf16=decoder_bf16, cpu_bf16_ewave=True
    )
    trainer = Trainer(run)
    result = trainer.run()
    row = result.history[0]
    assert all(torch.isfinite(torch.tensor(row[k])) for k in ("loss", "seg", "latent", "align"))
    # validation scores the fp32 model, whatever the training arithmetic
    with torch.autocast("cpu", enabled=False):
        assert trainer.validate() == row["val_dice"]


def test_cpu_bf16_encodes_the_cached_views_in_bf16_and_keeps_them_apart(
    tiny_dataset, tmp_path, monkeypatch
):
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    views = {}
    for bf16 in (False, True):
        run = config(tiny_dataset, tmp_path / f"{bf16}", epochs=1, cached_views=1, cpu_bf16=bf16)
        views[bf16] = Trainer(run).targets.full
        views[bf16].prepare(None, None)
    fp32, bf16 = views[False], views[True]
    assert torch.equal(fp32.views["image"], bf16.views["image"])  # the same pixels
    a, b = fp32.views["z_mask"].float(), bf16.views["z_mask"].float()
    # bf16 arithmetic, not another encoder (32 BUSI views at 224: image latents 1.4 % apart,
    # mask latents 11 %, decoding to masks that agree at Dice 0.9999)
    assert not torch.equal(a, b) and (a - b).norm() < 0.05 * a.norm()
    # neither run would take the other's views file for its own
    assert fp32.fingerprint() != bf16.fingerprint()
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: frozenset({"avx512f"}))
    assert bf16.fingerprint() == fp32.fingerprint()  # no bf16 units: fp32 views, as before
