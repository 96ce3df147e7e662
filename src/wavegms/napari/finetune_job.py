"""Fine-tuning in a separate process, for the fine-tune dock.

The dock starts :func:`train_process` with a ``spawn`` context: the child imports torch, runs
:func:`wavegms.training.trainer.train` and sends ``(kind, payload)`` messages through a queue:
``("progress", Progress)``, then one of ``("done", summary)`` or ``("error", text)``. Stop
sets an event that the child turns into ``CancelToken.cancel()``; the trainer then stops at
the next batch and keeps its last completed epoch. Memory is returned when the child ends.

Qt-free and torch-free at import time (the child imports it too).
"""

from __future__ import annotations

from wavegms.training.finetune import FinetuneRequest, finetune_config


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
    from wavegms.core.progress import CancelToken
    from wavegms.training.trainer import train

    cancel = CancelToken()
    try:
        config = finetune_config(request)
        result = train(config, progress=Forwarder(messages, stop, cancel), cancel=cancel)
        summary = {
            "best_model": str(result.best_model) if result.best_model else None,
            "best_val_dice": result.best_val_dice,
            "epochs_done": result.epochs_done,
            "cancelled": result.cancelled,
        }
        messages.put(("done", summary))
    except Exception as err:
        from wavegms.napari.jobs import error_text

        messages.put(("error", error_text(err)))
