"""What a training run hands back: :class:`TrainResult`, read off the trainer at its end."""

from __future__ import annotations

from collections.abc import Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wavegms.training import checkpoint


@dataclass
class TrainResult:
    run_dir: Path
    best_model: Path | None  # None: no epoch ended
    best_val_dice: float  # -1 when no epoch ended
    epochs_done: int
    history: list[dict]
    cancelled: bool
    best_epoch: int  # 1-based epoch of the best model (0 if none)
    train_images: int
    val_images: int


class _Finished(Protocol):
    """What of a trainer its result reads (``training.trainer.Trainer`` is one)."""

    run_dir: Path
    best_val_dice: float
    epoch: int
    history: list[dict]
    train_set: Sized
    val_set: Sized


def result_of(trainer: _Finished, cancelled: bool) -> TrainResult:
    """The result of ``trainer`` as it stands; ``cancelled``: a Stop ended it."""
    # The best epoch is the first to reach the best Dice (later ties do not replace it).
    best_epoch = next(
        (row["epoch"] for row in trainer.history if row.get("val_dice") == trainer.best_val_dice),
        0,
    )
    return TrainResult(
        run_dir=trainer.run_dir,
        best_model=checkpoint.best_model_path(trainer.run_dir),
        best_val_dice=trainer.best_val_dice,
        epochs_done=trainer.epoch,
        history=trainer.history,
        cancelled=cancelled,
        best_epoch=best_epoch,
        train_images=len(trainer.train_set),
        val_images=len(trainer.val_set),
    )
