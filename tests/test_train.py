"""The training engine: checkpoints, exact resume, cancel, validation, fine-tuning."""

from __future__ import annotations

import itertools
import json
import warnings

import pytest
import torch

from wavegms.cli import main
from wavegms.core.errors import InputError
from wavegms.core.progress import CancelToken
from wavegms.net.autoencoders import load_autoencoder
from wavegms.store.model_files import load_model
from wavegms.training import step as step_module
from wavegms.training import trainer as trainer_module
from wavegms.training.config import TrainConfig, parse_duration
from wavegms.training.schedule import lr_factor
from wavegms.training.trainer import Trainer, train


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
    result = train(config(tiny_dataset, tmp_path / "run", epochs=2))
    run = tmp_path / "run"
    assert result.epochs_done == 2 and not result.cancelled
    for name in ("last.safetensors", "last.json", "best.safetensors", "best.json", "history.json"):
        assert (run / name).is_file(), name
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(0 <= row["val_dice"] <= 1 and row["loss"] > 0 for row in history)
    best = load_model(result.best_model)
    assert best.metadata["val_dice"] == pytest.approx(max(r["val_dice"] for r in history))
    assert not list(run.glob(".*"))  # no temporary files left behind


def test_interrupted_run_resumes_on_the_same_loss_curve(tiny_dataset, tmp_path):
    # two epochs: stopped after the first, the second is the resumed one
    whole = train(config(tiny_dataset, tmp_path / "whole", epochs=2))

    cancel = CancelToken()

    def stop_after_first_epoch(p):
        if p.stage == "epoch" and p.done == 1:
            cancel.cancel()

    split = config(tiny_dataset, tmp_path / "split", epochs=2)
    part = train(split, stop_after_first_epoch, cancel)
    assert part.cancelled and part.epochs_done == 1
    resumed = train(split)
    assert resumed.epochs_done == 2
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


def test_stop_acts_inside_a_batch_and_before_validation(tiny_dataset, tmp_path, monkeypatch):
    # Stop pressed during a forward pass: no backward pass or optimiser step follows.
    cancel = CancelToken()
    real_latent_loss = step_module.latent_loss

    def press_stop_mid_forward(*args):
        cancel.cancel()
        return real_latent_loss(*args)

    monkeypatch.setattr(step_module, "latent_loss", press_stop_mid_forward)
    trainer = Trainer(config(tiny_dataset, tmp_path / "mid"), cancel=cancel)
    steps = []
    step = trainer.optimizer.step
    trainer.optimizer.step = lambda *a, **k: (steps.append(1), step(*a, **k))[1]
    result = trainer.run()
    assert result.cancelled and result.epochs_done == 0 and steps == []
    assert result.best_model is None
    monkeypatch.setattr(step_module, "latent_loss", real_latent_loss)

    # Stop pressed after an epoch's last batch: no validation, the epoch is not counted.
    stop = CancelToken()
    validated = []

    def last_batch(p):
        if p.stage == "batch" and p.done == p.total and p.done > 0:
            stop.cancel()

    trainer = Trainer(config(tiny_dataset, tmp_path / "end"), last_batch, stop)
    predict = trainer.model.predict_soft
    trainer.model.predict_soft = lambda *a, **k: (validated.append(1), predict(*a, **k))[1]
    result = trainer.run()
    assert result.cancelled and result.epochs_done == 0 and validated == []
    assert not (tmp_path / "end" / "last.safetensors").exists()


def test_only_ewave_and_lmm_train(tiny_dataset, tmp_path):
    trainer = Trainer(config(tiny_dataset, tmp_path / "run", epochs=1))  # its optimiser steps
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
    # one cached view is the plain image: asking for augmentation with it is said, not silent
    with pytest.warns(UserWarning, match="augment does nothing with cached_views 1"):
        Trainer(config(tiny_dataset, tmp_path / "one", cached_views=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Trainer(config(tiny_dataset, tmp_path / "plain", cached_views=1, augment=False))


def test_channels_last_computes_the_same_function_and_may_change_on_resume(tiny_dataset, tmp_path):
    plain = train(config(tiny_dataset, tmp_path / "plain", epochs=2, cached_views=1))
    nhwc = config(tiny_dataset, tmp_path / "nhwc", epochs=2, cached_views=1, channels_last=True)
    trainer = Trainer(nhwc)
    ae = trainer.model.autoencoder
    convs = [m for m in ae.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    trainer.config.epochs = 1
    trainer.run()
    assert plain.history[0]["loss"] == pytest.approx(trainer.history[0]["loss"], rel=1e-3)
    # how it computes, not what it learns: the run goes on without it
    resumed = train(config(tiny_dataset, tmp_path / "nhwc", epochs=2, cached_views=1))
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    # the same function (the global RNG untouched before the runs above)
    reference = load_autoencoder(nhwc.backend, nhwc.backend_path)
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        z, z_ref = ae.encode(images), reference.encode(images)
        torch.testing.assert_close(z, z_ref, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ae.decode(z_ref), reference.decode(z_ref), rtol=1e-4, atol=1e-5)


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


def test_val_every_validates_the_first_every_nth_and_the_last_epoch(tiny_dataset, tmp_path):
    reported = []
    run = config(tiny_dataset, tmp_path / "run", epochs=4, val_every=3)
    result = train(run, lambda p: p.stage == "epoch" and reported.append(p.metrics))
    validated = {row["epoch"]: row["val_dice"] for row in result.history if "val_dice" in row}
    assert list(validated) == [1, 3, 4]  # the first (a Stop keeps it), every 3rd, the last
    assert ["val_dice" in m for m in reported] == [True, False, True, True]
    assert result.best_val_dice == max(validated.values())
    assert result.best_epoch == min(e for e, d in validated.items() if d == result.best_val_dice)
    assert load_model(result.best_model).metadata["epoch"] == result.best_epoch


class FakeClock:
    """A clock that advances ``per_batch`` seconds with every training batch reported."""

    def __init__(self, per_batch: float) -> None:
        self.now, self.per_batch = 0.0, per_batch

    def __call__(self) -> float:
        return self.now

    def progress(self, p) -> None:
        if p.stage == "batch":
            self.now += self.per_batch


@pytest.mark.parametrize(
    ("per_batch", "decided_after", "planned"),
    [
        # 4 training images in batches of 2: an epoch is 2 batches, 2 * per_batch seconds.
        (5.0, 2, 4),  # 10 s epochs: after 2, 25 s left, 95 % of it fits 2 more
        (4.0, 2, 5),  # 8 s epochs: after 2, 29 s left, 95 % of it fits 3 more
        (15.0, 1, 1),  # 30 s epochs: after 1, 15 s left, a second one would not fit
    ],
)
def test_time_budget_fixes_the_epochs_from_measured_epoch_time(
    tiny_dataset, tmp_path, monkeypatch, per_batch, decided_after, planned
):
    fake = FakeClock(per_batch)
    monkeypatch.setattr(trainer_module, "clock", fake)
    run = config(tiny_dataset, tmp_path / "run", epochs=50, time_budget_s=45, augment=False)
    result = train(run, progress=fake.progress)
    assert result.epochs_done == planned and not result.cancelled
    assert fake.now < 45  # ended by itself, inside the budget
    decisions = [row for row in result.history if "planned_epochs" in row]
    assert [row["epoch"] for row in decisions] == [decided_after]
    assert decisions[0]["planned_epochs"] == planned
    assert decisions[0]["budget_seconds_per_epoch"] == pytest.approx(2 * per_batch)
    # the cosine runs over the planned epochs, not the 50 asked for
    for row in result.history:
        assert row["lr"] == pytest.approx(run.lr * lr_factor(row["epoch"] - 1, planned, 1))
    assert json.loads((tmp_path / "run" / "last.json").read_text())["planned_epochs"] == planned


def test_a_cpu_budget_counts_cpu_seconds_not_wall_seconds(tiny_dataset, tmp_path, monkeypatch):
    # wall time runs 20x faster than CPU time (a busy machine): the CPU clock decides
    cpu, wall = FakeClock(10.0), FakeClock(100.0)
    monkeypatch.setattr(trainer_module, "clock", wall)
    monkeypatch.setattr(trainer_module.time, "process_time", cpu)

    def both(p) -> None:
        cpu.progress(p)
        wall.progress(p)

    run = config(tiny_dataset, tmp_path / "run", epochs=50, time_budget_s=45, budget_cpu=True)
    result = train(run, progress=both)
    # 20 CPU-s epochs: after 2, 5 s of the 45 are left, a third would not fit; by the wall
    # clock (200 s epochs) the run would have stopped after the first, as over budget
    assert result.epochs_done == 2 and not result.cancelled
    assert result.history[-1]["cpu_seconds"] == pytest.approx(20.0)
    assert result.history[-1]["planned_epochs"] == 2


def test_a_resumed_budget_run_keeps_its_schedule(tiny_dataset, tmp_path, monkeypatch):
    # 14 s epochs: after 2, 17 s of the 45 are left, 95 % of it fits one more
    fake = FakeClock(7.0)
    monkeypatch.setattr(trainer_module, "clock", fake)
    args = config(tiny_dataset, tmp_path / "whole", epochs=50, time_budget_s=45)
    whole = train(args, progress=fake.progress)
    assert whole.history[1]["planned_epochs"] == 3
    cancel = CancelToken()

    def stop_after_the_deciding_epoch(p):
        fake.progress(p)
        if p.stage == "epoch" and p.done == 2:
            cancel.cancel()

    fake.now = 0.0
    args = config(tiny_dataset, tmp_path / "split", epochs=50, time_budget_s=45)
    part = train(args, stop_after_the_deciding_epoch, cancel)
    assert part.cancelled and part.epochs_done == 2
    fake.now, fake.per_batch = 0.0, 100.0  # a slower machine now: the plan stays as it was
    resumed = train(config(tiny_dataset, tmp_path / "split", epochs=50, time_budget_s=45))
    assert resumed.epochs_done == whole.epochs_done == 3
    for a, b in zip(whole.history, resumed.history, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["lr"] == pytest.approx(b["lr"])


def test_time_budget_durations():
    assert [parse_duration(t) for t in ("90s", "8m", "1.5h", "300", " 2M ")] == [
        90,
        480,
        5400,
        300,
        120,
    ]
    for bad in ("", "ten", "0", "-5m", "8 minutes", "1e3"):
        with pytest.raises(InputError, match="time budget"):
            parse_duration(bad)


def test_cli_rejects_a_bad_time_budget_in_one_line(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(f"data_dir: {tmp_path}\n")
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--time-budget", "8 min"]) == 2
    err = capsys.readouterr().err
    assert "time budget '8 min'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- data_dir: x\n", "must be a mapping of settings"),
        ("just some text\n", "must be a mapping of settings"),
        ("epochs: 3\n", "needs data_dir"),
        ("data_dir: x\nepochs: ten\n", "epochs must be a whole number, not 'ten'"),
        ("data_dir: x\nepochs: 2.5\n", "epochs must be a whole number"),
        ("data_dir: x\nepochs: yes\n", "epochs must be a whole number"),
        ("data_dir: x\nbatch_size: 0\n", "batch_size must lie between 1 and"),
        ("data_dir: x\nlr: fast\n", "lr must be a number, not 'fast'"),
        ("data_dir: x\nlr: 20\n", "lr must lie between"),
        ("data_dir: x\nval_fraction: 1\n", "val_fraction must be between 0 and 1"),
        ("data_dir: x\ntime_budget_s: -1\n", "time_budget_s must lie between"),
        ("data_dir: x\nseed: -1\n", "seed must lie between"),
        ("data_dir: x\nval_every: 0\n", "val_every must lie between"),
        ("data_dir: x\nval_every: 2\ntime_budget_s: 60\n", "val_every above 1 needs a fixed"),
        ("data_dir: x\naugment: 1\n", "augment must be true or false"),
        ("data_dir: x\ndevice: 0\n", "device must be a non-empty text"),
        ("data_dir: x\nseg_heads: out\n", "seg_heads must be a list"),
        ("data_dir: x\naugmentation: {flip: 1}\n", "unknown augmentation setting"),
        ("data_dir: x\naugmentation: {hflip: 2}\n", "probability hflip"),
        ("data_dir: x\naugmentation: {hflip: often}\n", "augmentation setting hflip"),
    ],
)
def test_every_bad_setting_is_a_one_line_error(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        TrainConfig.from_yaml(path)
    assert "\n" not in str(err.value)


def test_yaml_numbers_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data_dir: x\nlr: 2e-3\nepochs: 7\nseg_heads: [out]\n")
    config = TrainConfig.from_yaml(path, epochs=None, time_budget_s=90.0)
    assert (config.lr, config.epochs, config.seg_heads) == (0.002, 7, ("out",))
    assert config.time_budget_s == 90.0 and config.split == "train"


def test_cli_train_passes_the_time_budget_to_the_run(tiny_dataset, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data_dir: {tiny_dataset}\nimage_size: 32\nepochs: 1\nbatch_size: 2\n"
        "val_fraction: 0.34\nwarmup_epochs: 1\nseg_heads: [out]\ndevice: cpu\n"
    )
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(run), "--time-budget", "1.5h"]) == 0
    assert "time budget 5400 s" in capsys.readouterr().out
    assert json.loads((run / "last.json").read_text())["config"]["time_budget_s"] == 5400
