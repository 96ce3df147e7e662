"""Fine-tuning: a new named model from a base model and a folder of corrected pairs.

One function for the napari dock (run in a child process), the command line
(``wavegms finetune``) and the benchmark. The base model is only read; the result is copied
into the user model folder under a new name that may not exist yet.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from wavegms.core.errors import InputError
from wavegms.core.files import atomic_write
from wavegms.core.progress import CancelToken, ProgressCallback

if TYPE_CHECKING:  # torch is imported only when training starts (napari imports this early)
    from wavegms.training.trainer import TrainConfig, TrainResult


@dataclass
class FinetuneRequest:
    """What the user chose; plain values, so it pickles into a child process."""

    data_dir: str  # images/ and masks/ (no split file: every pair is used)
    base_model: str  # name or path
    new_name: str
    out_dir: str | None = None  # the run folder; default: a new timestamped one
    device: str = "auto"
    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 4
    val_fraction: float = 0.2
    augment: bool = True
    fast_cpu: bool = True  # on CPU: cached targets, no decoder in the loss (see below)
    seed: int = 2333


def new_run_dir(name: str) -> Path:
    from wavegms.store.paths import runs_dir

    return runs_dir() / f"finetune-{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def finetune_config(request: FinetuneRequest) -> TrainConfig:
    """The training config for a request: the base model's size and backend, all pairs."""
    from wavegms.core.devices import resolve_device
    from wavegms.store.catalogue import resolve_model
    from wavegms.store.model_files import read_config
    from wavegms.training.trainer import TrainConfig

    base_path = resolve_model(request.base_model)
    base = read_config(base_path)["model"]
    config = TrainConfig(
        data_dir=request.data_dir,
        name=request.new_name,
        out_dir=request.out_dir or str(new_run_dir(request.new_name)),
        split=None,
        val_fraction=request.val_fraction,
        image_size=int(base["image_size"]),
        backend=str(base["backend"]),
        init_model=str(base_path),
        epochs=request.epochs,
        batch_size=request.batch_size,
        lr=request.lr,
        warmup_epochs=min(1, request.epochs - 1),
        seed=request.seed,
        device=request.device,
        augment=request.augment,
    )
    if request.fast_cpu and resolve_device(request.device).type == "cpu":
        # The frozen encoder and the decoder are the CPU cost. Encode the targets of a plain
        # and an augmented view of each pair once, and train on the latent and alignment
        # losses only: from a trained base model, 10 BUSI pairs x 10 epochs took 62 s and
        # reached validation Dice 0.87, against 90 s and 0.84 with the Dice loss through the
        # decoder every second batch (docs/performance.md).
        config.cached_views = 2 if request.augment else 1
        config.seg_heads = ()
    config.validate()
    return config


def install_model(run_dir: str | Path, name: str) -> Path:
    """Copy a run's best model into the user model folder as ``name`` (never overwriting);
    used by the dock, ``wavegms finetune`` and ``wavegms train --export``.

    Weights first, config last: a model is only listed once its config is in place.
    """
    from wavegms.store.catalogue import check_new_model_name
    from wavegms.store.model_files import model_paths

    weights, config = model_paths(Path(run_dir) / "best")
    if not (weights.is_file() and config.is_file()):
        raise InputError("training stopped before its first epoch ended: no model to keep")
    target_weights, target_config = model_paths(check_new_model_name(name))
    for source, target in ((weights, target_weights), (config, target_config)):
        atomic_write(target, partial(shutil.copyfile, source), target.suffix)
    return target_weights


def finetune(
    request: FinetuneRequest,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> tuple[TrainResult, Path | None]:
    """Train, then install the best epoch as ``request.new_name``; returns the run's result
    and the installed weights (None when stopped before the first epoch ended)."""
    from wavegms.store.catalogue import check_new_model_name
    from wavegms.training.trainer import train

    check_new_model_name(request.new_name)  # refuse before spending minutes on training
    result = train(finetune_config(request), progress, cancel)
    if result.best_model is None:
        return result, None
    return result, install_model(result.run_dir, request.new_name)
