"""A trainer's resumable state in its run folder: what ``last.*`` and ``best.*`` hold of it.

The files themselves (atomic writes, identities, the tensor layout) are ``checkpoint``'s;
this module says which of the trainer's fields go into them and how they come back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sized
from pathlib import Path
from typing import Protocol

import torch

from wavegms.net.model import WaveGMS
from wavegms.training import checkpoint
from wavegms.training.config import TrainConfig
from wavegms.training.ema import WeightAverage
from wavegms.training.schedule import REWARM_STEPS


class Trainer(Protocol):
    """What of a trainer its run folder keeps (``training.trainer.Trainer`` is one)."""

    config: TrainConfig
    run_dir: Path
    device: torch.device
    model: WaveGMS
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    average: WeightAverage | None
    identity: dict
    epoch: int
    history: list[dict]
    best_val_dice: float
    planned_epochs: int | None
    rewarm_steps: int
    train_set: Sized
    val_set: Sized


def save(t: Trainer) -> None:
    """``last.*``: weights, optimiser moments, RNG states, the weight average, the history."""
    tensors = {"rng.generator": t.generator.get_state(), "rng.torch": torch.get_rng_state()}
    if t.device.type == "cuda":  # the model's latent sampling draws on the GPU
        tensors["rng.cuda"] = torch.cuda.get_rng_state(t.device)
    if t.average is not None:
        tensors.update(t.average.tensors())
    state = {
        "epoch": t.epoch,
        "best_val_dice": t.best_val_dice,
        "history": t.history,
        "planned_epochs": t.planned_epochs,
        "config": t.config.to_dict(),
        checkpoint.IDENTITY_KEY: t.identity,
    }
    checkpoint.save_last(t.run_dir, t.model, t.optimizer, tensors, state)
    checkpoint.write_history(t.run_dir, t.history)


def restore(t: Trainer) -> bool:
    """Load ``last.*`` into ``t``; True if a run was resumed. A run folder started with other
    data, settings or base model is refused. A checkpoint without optimiser moments (one
    carried in the repository) re-warms the learning rate over the first steps."""
    state = checkpoint.read_state(t.run_dir)
    if state is None:
        return False
    checkpoint.check_identity(t.run_dir, state, t.identity)
    loaded = checkpoint.load_last(t.run_dir, t.model, t.optimizer)
    if loaded is None:
        return False
    meta, tensors = loaded
    t.generator.set_state(tensors["rng.generator"])
    torch.set_rng_state(tensors["rng.torch"])
    if t.device.type == "cuda" and "rng.cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda"], t.device)
    if t.average is not None:
        t.average.load(tensors)
    if not meta.get("moments", True):
        t.rewarm_steps = REWARM_STEPS
    t.epoch, t.history = meta["epoch"], meta["history"]
    t.best_val_dice = meta["best_val_dice"]
    t.planned_epochs = meta.get("planned_epochs")
    return True


def save_best(t: Trainer, val_dice: float) -> None:
    """``best.*``: the model as it is now (the caller applies the average), with its record."""
    meta = {
        "name": t.config.name,
        "epoch": t.epoch,
        "val_dice": val_dice,
        "train_images": len(t.train_set),
        "val_images": len(t.val_set),
        "data_dir": str(t.config.data_dir),
        "config": t.config.to_dict(),
    }
    if t.average is not None:
        meta["weights"] = f"exponential moving average, decay {t.config.ema_decay:g}"
    checkpoint.save_best(t.run_dir, t.model, meta)


def restore_best(t: Trainer) -> None:
    """Write ``best.*`` from the resumed weights when the folder lacks it and the best epoch is
    the last one: a folder seeded from a carried checkpoint (which leaves out that copy of the
    last epoch) would otherwise finish with no best model to ship or export."""
    if not t.history or checkpoint.best_model_path(t.run_dir) is not None:
        return
    if t.history[-1].get("val_dice") != t.best_val_dice:
        return
    with t.average.applied() if t.average else contextlib.nullcontext():
        save_best(t, t.best_val_dice)
