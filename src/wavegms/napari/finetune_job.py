"""Fine-tuning in a separate process, for the fine-tune dock.

The dock starts :func:`train_process` with a ``spawn`` context: the child imports torch, runs
:func:`wavegms.train.train` and sends ``(kind, payload)`` messages through a queue:
``("progress", Progress)``, then one of ``("done", summary)`` or ``("error", text)``. Stop
sets an event that the child turns into ``CancelToken.cancel()``; the trainer then stops at
the next batch and keeps its last completed epoch. Memory is returned when the child ends.

Qt-free and torch-free at import time (the child imports it too).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError


@dataclass
class FinetuneRequest:
    """Everything the child needs; plain values, so it pickles."""

    data_dir: str
    base_model: str
    new_name: str
    out_dir: str
    device: str = "auto"
    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 4
    val_fraction: float = 0.2
    augment: bool = True
    fast_cpu: bool = True


def new_run_dir(name: str) -> Path:
    from ..paths import runs_dir

    return runs_dir() / f"finetune-{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def train_config(request: FinetuneRequest):
    """The core ``TrainConfig`` for a request (base model's size and backend)."""
    from ..devices import resolve_device
    from ..model_io import read_config
    from ..registry import resolve_model
    from ..train import TrainConfig

    base = read_config(resolve_model(request.base_model))["model"]
    config = TrainConfig(
        data_dir=request.data_dir,
        name=request.new_name,
        out_dir=request.out_dir,
        split=None,  # the collected pairs have no split file: use them all
        val_fraction=request.val_fraction,
        image_size=int(base["image_size"]),
        backend=str(base["backend"]),
        init_model=str(resolve_model(request.base_model)),
        epochs=request.epochs,
        batch_size=request.batch_size,
        lr=request.lr,
        warmup_epochs=min(1, request.epochs - 1),
        device=request.device,
        augment=request.augment,
        cached_views=0,
    )
    if request.fast_cpu and resolve_device(request.device).type == "cpu":
        config.seg_heads = ("out",)  # the decoder is the CPU cost: decode the final head only
    config.validate()
    return config


class Forwarder:
    """The trainer's progress callback in the child: sends each report to the dock and turns
    the dock's Stop event into a cancellation the trainer sees at its next batch."""

    def __init__(self, messages, stop, cancel) -> None:
        self.messages, self.stop, self.cancel = messages, stop, cancel

    def __call__(self, report) -> None:
        if self.stop.is_set():
            self.cancel.cancel()
        self.messages.put(("progress", report))


def train_process(request: FinetuneRequest, messages, stop) -> None:
    """The child process: train, report through ``messages``, stop when ``stop`` is set."""
    from ..progress import CancelToken
    from ..train import train

    cancel = CancelToken()
    try:
        config = train_config(request)
        result = train(config, progress=Forwarder(messages, stop, cancel), cancel=cancel)
        summary = {
            "best_model": str(result.best_model) if result.best_model else None,
            "best_val_dice": result.best_val_dice,
            "epochs_done": result.epochs_done,
            "cancelled": result.cancelled,
        }
        messages.put(("done", summary))
    except Exception as err:
        from .jobs import error_text

        messages.put(("error", error_text(err)))


def install_model(run_dir: str | Path, name: str) -> Path:
    """Copy a run's best model into the user model directory as ``name`` (never overwriting).

    Weights first, config last: a model is only listed once its config is in place.
    """
    from ..model_io import model_paths
    from ..registry import check_new_model_name

    weights, config = model_paths(Path(run_dir) / "best")
    if not (weights.is_file() and config.is_file()):
        raise InputError("training stopped before its first epoch ended: no model to keep")
    target_weights, target_config = model_paths(check_new_model_name(name))
    target_weights.parent.mkdir(parents=True, exist_ok=True)
    for source, target in ((weights, target_weights), (config, target_config)):
        tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target_weights
