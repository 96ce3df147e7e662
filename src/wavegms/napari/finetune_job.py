"""Fine-tuning in a child process, for the fine-tune dock (``runner.ProcessJob``).

The child calls the library's :func:`wavegms.training.finetune.finetune`, which trains and
installs the best epoch as the new model, and sends ``(kind, payload)`` messages through a
queue: ``("progress", Progress)``, then ``("done", outcome as a dict, paths as str)`` or
``("error", text)``. Stop sets an event that the child turns into ``CancelToken.cancel()``; the
library then stops at the next batch and installs the best completed epoch.

Qt-free and torch-free at import time (the child imports it too).
"""

from __future__ import annotations

import dataclasses
from pathlib import PurePath

from wavegms.training.finetune import FinetuneRequest


class Forwarder:
    """The library's progress callback in the child: sends each report to the dock and turns
    the dock's Stop event into a cancellation the trainer sees at its next batch."""

    def __init__(self, messages, stop, cancel) -> None:
        self.messages, self.stop, self.cancel = messages, stop, cancel

    def __call__(self, report) -> None:
        if self.stop.is_set():
            self.cancel.cancel()
        self.messages.put(("progress", report))


def outcome_message(outcome) -> dict:
    """A ``FinetuneOutcome`` as plain values for the queue (paths as text)."""
    return {
        key: str(value) if isinstance(value, PurePath) else value
        for key, value in dataclasses.asdict(outcome).items()
    }


def train_process(request: FinetuneRequest, messages, stop) -> None:
    """The child process: fine-tune, report through ``messages``, stop when ``stop`` is set."""
    from wavegms.core.progress import CancelToken
    from wavegms.training.finetune import finetune

    cancel = CancelToken()
    try:
        outcome = finetune(request, progress=Forwarder(messages, stop, cancel), cancel=cancel)
        messages.put(("done", outcome_message(outcome)))
    except Exception as err:
        from wavegms.napari.jobs import error_text

        messages.put(("error", error_text(err)))
