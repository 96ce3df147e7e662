"""DDP training on CPU over gloo, 2 spawned processes: both ranks hold the same weights after
every step, and a run stopped after an epoch and resumed continues the same loss curve."""

from __future__ import annotations

import hashlib
import math

import pytest

from wavegms.training.config import TrainConfig
from wavegms.training.distributed import run_ranks, train_rank
from wavegms.training.ranks import Ranks


def _config(data, out, epochs: int) -> TrainConfig:
    return TrainConfig(
        data_dir=str(data), out_dir=str(out), image_size=32, epochs=epochs, batch_size=1,
        val_fraction=0.34, warmup_epochs=1, seg_heads=("out",), device="cpu",
    )  # fmt: skip


def _digest(params) -> str:
    return hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in params)).hexdigest()


def _on_each_rank(ranks: Ranks, data, root) -> dict:
    """A whole 2-epoch run, its weights' digest taken after every optimiser step; then the
    same run stopped after epoch 1 (``epochs`` may change on resume) and resumed."""
    from wavegms.training.trainer import Trainer

    trainer = Trainer(_config(data, root / "whole", 2), ranks=ranks)
    digests, step = [], trainer.optimizer.step

    def step_and_digest(*args, **kwargs):
        out = step(*args, **kwargs)
        digests.append(_digest(trainer.params))
        return out

    trainer.optimizer.step = step_and_digest
    whole = trainer.run()
    part = train_rank(ranks, _config(data, root / "split", 1))
    resumed = train_rank(ranks, _config(data, root / "split", 2))
    return {
        "digests": digests,
        "train_images": len(trainer.train_set),
        "whole": whole.history,
        "part": part.history,
        "resumed": resumed.history,
    }


def test_two_gloo_ranks_keep_equal_weights_and_resume_on_the_same_curve(tiny_dataset, tmp_path):
    config = _config(tiny_dataset, tmp_path / "whole", 2)
    first, second = run_ranks(2, config, _on_each_rank, tiny_dataset, tmp_path)
    # each rank takes half of every epoch: ceil(images / (2 ranks x batch 1)) steps an epoch
    steps = 2 * math.ceil(first["train_images"] / 2)
    assert len(first["digests"]) == steps
    assert first["digests"] == second["digests"]  # the same weights after every step
    assert len(set(first["digests"])) == steps  # and every step changed them

    def curve(history):
        timings = ("seconds", "cpu_seconds")
        return [{k: v for k, v in row.items() if k not in timings} for row in history]

    assert curve(first["whole"]) == curve(second["whole"])  # losses averaged over the ranks
    assert len(first["part"]) == 1 and len(first["resumed"]) == 2
    for whole, resumed in zip(first["whole"], first["resumed"], strict=True):
        assert resumed["loss"] == pytest.approx(whole["loss"], rel=1e-5)
        assert resumed["val_dice"] == pytest.approx(whole["val_dice"], abs=1e-6)
    for name in ("last.safetensors", "best.safetensors", "history.json"):
        assert (tmp_path / "split" / name).is_file()
    assert not list((tmp_path / "split").glob(".*"))  # no temporary file left by any rank
