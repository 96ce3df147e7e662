"""A test-only stand-in for the library's ``finetune()`` as the shared contract fixes it
(returning a ``FinetuneOutcome``), for as long as ``wavegms.training.finetune`` returns the
older ``(TrainResult, path)``. The dock's child process cannot see a monkeypatch made in the
test process, so :func:`train_process` installs the stand-in in the child, then runs the
dock's real child code. Once the library has ``FinetuneOutcome``, nothing is replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class FinetuneOutcome:
    run_dir: Path
    installed: Path | None
    best_val_dice: float
    best_epoch: int
    epochs_done: int
    train_images: int
    val_images: int
    cancelled: bool


def finetune(request, progress=None, cancel=None) -> FinetuneOutcome:
    from wavegms.data.pairs import carve_validation, dataset_pairs
    from wavegms.store.catalogue import check_new_model_name
    from wavegms.training.finetune import finetune_config, install_model
    from wavegms.training.trainer import train

    check_new_model_name(request.new_name)
    config = finetune_config(request)
    result = train(config, progress, cancel)
    installed = None
    if result.best_model is not None:
        installed = install_model(result.run_dir, request.new_name)
    names = [p.name for p in dataset_pairs(request.data_dir, split=None)]
    train_names, val_names = carve_validation(names, config.val_fraction, config.seed)
    best = max(result.history, key=lambda row: row["val_dice"], default={"epoch": 0})
    return FinetuneOutcome(
        run_dir=Path(result.run_dir),
        installed=installed,
        best_val_dice=result.best_val_dice,
        best_epoch=best["epoch"],
        epochs_done=result.epochs_done,
        train_images=len(train_names),
        val_images=len(val_names),
        cancelled=result.cancelled,
    )


def library_has_contract() -> bool:
    import wavegms.training.finetune as library

    return hasattr(library, "FinetuneOutcome")


def train_process(request, messages, stop) -> None:
    """The dock's child process, with the stand-in where the library lacks the contract."""
    import wavegms.training.finetune as library
    from wavegms.napari.finetune_job import train_process as real

    if not library_has_contract():
        library.finetune = finetune
    real(request, messages, stop)
