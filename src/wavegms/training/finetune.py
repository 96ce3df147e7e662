"""Fine-tuning: a new named model from a base model and a folder of corrected pairs.

One function for the napari dock (run in a child process), the command line
(``wavegms finetune``) and the benchmark. The base model is only read; the result is copied
into the user model folder under a new name that may not exist yet.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from wavegms.core.errors import InputError
from wavegms.core.files import atomic_write
from wavegms.core.progress import CancelToken, ProgressCallback

if TYPE_CHECKING:  # torch is imported only when training starts (napari imports this early)
    from wavegms.training.config import TrainConfig


@dataclass
class FinetuneRequest:
    """What the user chose; plain values, so it pickles into a child process."""

    data_dir: str  # images/ and masks/ (no split file: every pair is used)
    base_model: str  # name or path
    new_name: str
    out_dir: str | None = None  # the run folder; default: a new timestamped one
    device: str = "auto"
    # From the few-shot curve (scripts/fewshot_curve.py, docs/training.md: 10 Kvasir-SEG pairs
    # from busi, DSC on 30 held-out pairs): lr 2e-3 is ahead of 1e-3 at 3, 6, 10 and 20 epochs
    # (42.16 against 41.52 at 20) and the curve still rises at 20; 3e-3 is noisier (23.78 at
    # 10 epochs, 44.80 at 20) and 5e-3 collapses (0.34 at 10).
    epochs: int = 20
    lr: float = 2e-3
    batch_size: int = 4
    val_fraction: float = 0.2
    augment: bool = True
    fast_cpu: bool = True  # on CPU: cached targets, no decoder in the loss (see below)
    # On a CPU with bf16 units (detected at run time): E_wave and the LMM train under bf16
    # autocast (TrainConfig.cpu_bf16_ewave; validation and the installed model stay fp32).
    cpu_bf16: bool = True
    # Validate every 4th epoch and the last: the decode of the validation images was a third
    # of an epoch's CPU time. Both settings are on the few-shot curve (docs/training.md).
    val_every: int = 4
    seed: int = 2333


@dataclass
class FinetuneOutcome:
    """What a fine-tuning did; plain values, so it crosses a process boundary as a dict."""

    run_dir: Path
    installed: Path | None  # weights of the newly installed model; None: no epoch ended
    best_val_dice: float
    best_epoch: int  # 1-based epoch whose weights were installed (0 if none)
    epochs_done: int
    train_images: int
    val_images: int
    cancelled: bool
    epochs_planned: int = 0  # the request's epochs (epochs_done < this: stopped early)
    best_model: Path | None = None  # the run's best checkpoint (installed or not)


#: Validation images a fine-tune keeps aside, at least. The model kept is the epoch with the
#: best validation Dice; chosen on one image, that choice followed the noise of one Dice (issue
#: 17: epoch 2 of 20 was kept). Three images is the least that averages anything, and keeps
#: two of five pairs for training.
MIN_VAL_IMAGES = 3
MIN_PAIRS = MIN_VAL_IMAGES + 2


def count_pairs(data_dir: str | Path) -> int:
    """The image/mask pairs a fine-tune would use from ``data_dir`` (no split file)."""
    from wavegms.data.pairs import dataset_pairs

    return len(dataset_pairs(data_dir, None, None))


def validation_fraction(requested: float, pairs: int, least: int = MIN_VAL_IMAGES) -> float:
    """``requested``, raised so that at least ``least`` pairs validate; refuses fewer than
    ``least + 2`` pairs (two are left for training). ``least`` is :data:`MIN_VAL_IMAGES` but
    for the k-fold check's fold models (``inference.cross_validation``), which have too few."""
    if pairs < least + 2:
        raise InputError(
            f"fine-tuning needs at least {least + 2} image/mask pairs ({least} to "
            f"choose the best epoch on, 2 to train on), found {pairs}; add more pairs"
        )
    return max(float(requested), (least + 0.25) / pairs)


def new_run_dir(name: str) -> Path:
    from wavegms.store.paths import runs_dir

    return runs_dir() / f"finetune-{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def train_config(
    request: FinetuneRequest, base_path: Path, device: str, least_val: int = MIN_VAL_IMAGES
) -> TrainConfig:
    """The training config for a request: the base model's size and backend, all pairs, at
    least ``least_val`` of them validating (see :func:`validation_fraction`)."""
    from wavegms.store.catalogue import read_config
    from wavegms.training.config import TrainConfig

    base = read_config(base_path)["model"]
    config = TrainConfig(
        data_dir=request.data_dir,
        name=request.new_name,
        out_dir=request.out_dir or str(new_run_dir(request.new_name)),
        split=None,
        val_fraction=validation_fraction(
            request.val_fraction, count_pairs(request.data_dir), least_val
        ),
        image_size=int(base["image_size"]),
        backend=str(base["backend"]),
        init_model=str(base_path),
        epochs=request.epochs,
        batch_size=request.batch_size,
        lr=request.lr,
        warmup_epochs=min(1, request.epochs - 1),
        seed=request.seed,
        device=device,
        augment=request.augment,
        cpu_bf16_ewave=request.cpu_bf16,
        val_every=request.val_every,
        # last.* (weights and optimiser moments, 32 MB for busi) when validated, not every
        # epoch: a resumed fine-tune repeats at most val_every - 1 epochs of a minute's run
        checkpoint_every=request.val_every,
    )
    if request.fast_cpu and device == "cpu":
        # The frozen encoder and the decoder are the CPU cost. Encode the targets of a plain
        # and an augmented view of each pair once, and train on the latent and alignment
        # losses only: from a trained base model, 10 BUSI pairs x 10 epochs took 62 s and
        # reached validation Dice 0.87, against 90 s and 0.84 with the Dice loss through the
        # decoder every second batch (docs/performance.md).
        config.cached_views = 2 if request.augment else 1
        config.seg_heads = ()
    config.validate()
    return config


def _check_finite(weights: Path) -> None:
    """Refuse weights that are not finite (a diverged run): such a model is never installed."""
    import torch
    from safetensors.torch import load_file

    bad = [
        k
        for k, v in load_file(weights).items()
        if v.is_floating_point() and not torch.isfinite(v).all()
    ]
    if bad:
        raise InputError(
            f"training diverged: {len(bad)} weight tensor(s) of {weights} are not finite "
            f"(e.g. {bad[0]}); the model is not kept (try a lower learning rate)"
        )


def install_model(run_dir: str | Path, name: str) -> Path:
    """Copy a run's best model into the user model folder as ``name`` (never overwriting);
    used by :func:`finetune` and ``wavegms train --export``. Weights that are not finite
    are refused.

    Weights first, config last: a model is only listed once its config is in place.
    """
    from wavegms.store.catalogue import model_paths
    from wavegms.store.reservations import check_new_model_name

    weights, config = model_paths(Path(run_dir) / "best")
    if not (weights.is_file() and config.is_file()):
        raise InputError("training stopped before its first epoch ended: no model to keep")
    target_weights, target_config = model_paths(check_new_model_name(name, reserved_by=run_dir))
    _check_finite(weights)
    for source, target in ((weights, target_weights), (config, target_config)):
        atomic_write(target, partial(shutil.copyfile, source), target.suffix)
    return target_weights


def finetune(
    request: FinetuneRequest,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    install: bool = True,
) -> FinetuneOutcome:
    """Resolve base model, device and config once; train; install the best epoch as
    ``request.new_name``. Stopped before the first epoch ended: nothing is installed.

    The new name is reserved for the run (``store.reservations``) while it trains. With
    ``install=False`` (the napari docks: a new model is installed only once it has been
    compared with the one it would replace) nothing is installed and the name stays
    reserved, marked finished, until the user has decided."""
    from wavegms.store.reservations import release_name, reserve_name

    request = replace(request, out_dir=request.out_dir or str(new_run_dir(request.new_name)))
    reserve_name(request.new_name, request.out_dir)  # refused before minutes of training
    try:
        outcome = _finetune(request, progress, cancel, install)
    finally:
        if install:
            release_name(request.new_name)  # installed under it, or nothing to review
    if not install:
        from wavegms.store.reservations import mark_finished

        mark_finished(request.new_name, {k: str(v) for k, v in asdict(outcome).items()})
    return outcome


def _finetune(
    request: FinetuneRequest,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
    install: bool,
) -> FinetuneOutcome:
    from wavegms.core.devices import resolve_device
    from wavegms.store.catalogue import resolve_model
    from wavegms.training.trainer import train

    base_path = resolve_model(request.base_model)
    device = str(resolve_device(request.device))
    result = train(train_config(request, base_path, device), progress, cancel)
    installed = best = None
    if result.best_model is not None:
        best = result.best_model
        if not result.best_val_dice > 0:
            raise InputError(
                f"the fine-tuned model found nothing in the validation images (Dice "
                f"{result.best_val_dice:g}), so it is not kept as {request.new_name!r}; check "
                f"that the masks mark the structure in white (run folder {result.run_dir})"
            )
        if install:
            installed = install_model(result.run_dir, request.new_name)
    return FinetuneOutcome(
        run_dir=result.run_dir,
        installed=installed,
        best_val_dice=max(0.0, result.best_val_dice),
        best_epoch=result.best_epoch,
        epochs_done=result.epochs_done,
        train_images=result.train_images,
        val_images=result.val_images,
        cancelled=result.cancelled,
        epochs_planned=request.epochs,
        best_model=best,
    )
