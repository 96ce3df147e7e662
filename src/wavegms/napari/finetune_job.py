"""Fine-tuning in a child process for the fine-tune dock (``python -m`` this module).

The child is started as a module with its own entry point (:func:`launch`), never by
``multiprocessing``: a spawned ``multiprocessing`` child re-imports the parent's ``__main__``,
so a user's script that opened napari without a ``__main__`` guard opened a second napari.

The two talk in frames (:func:`send_frame`, :func:`read_frame`: a length and a pickle) over the
child's stdin and stdout. The parent sends the :class:`FinetuneRequest`, then ``"stop"`` (stop
at the next batch and install the best completed epoch) or ``"detach"`` (keep training after
the parent has gone). The child sends ``("progress", Progress)``, then ``("done", outcome as a
dict)`` or ``("error", text)``. When stdin reaches its end without ``"detach"`` the parent has
gone (closed or killed): the child stops at the next batch, as for ``"stop"``, and exits, so
no training outlives napari unasked. Whatever happens, the run folder's ``training.log``
records how the run went (started, sent to the background, how it ended), for a user whose
napari has gone by then.

Qt-free and torch-free at import time.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import BinaryIO

MODULE = "wavegms.napari.finetune_job"
_HEADER = struct.Struct(">I")
#: After the parent has gone, the longest the child goes on (stopping at the next batch and
#: installing the best epoch take seconds; a batch stuck for minutes must not keep it alive).
ORPHAN_GRACE_S = 120.0


def send_frame(stream: BinaryIO, value: object) -> None:
    data = pickle.dumps(value)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: BinaryIO) -> object:
    """The next value; ``EOFError`` when the other side has closed the pipe."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("pipe closed")
    size = _HEADER.unpack(header)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("pipe closed mid-frame")
    return pickle.loads(data)


def launch(request) -> subprocess.Popen:
    """Start the child for ``request`` (its stdin and stdout are the pipes to it)."""
    package_root = str(Path(__file__).resolve().parents[2])  # the wavegms the parent runs
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    child = subprocess.Popen(
        [sys.executable, "-m", MODULE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    send_frame(child.stdin, request)
    return child


#: The run folder's record of how a dock's fine-tune went (read by a user whose napari has gone).
LOG_NAME = "training.log"


def log_line(run_dir: str | Path | None, line: str) -> None:
    """Add a dated line to the run folder's :data:`LOG_NAME` (written whole, atomically)."""
    if not run_dir:
        return
    from wavegms.core.files import write_text

    path = Path(run_dir) / LOG_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        old = path.read_text(encoding="utf-8") if path.is_file() else ""
        write_text(path, f"{old}{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
    except OSError as err:  # a record that cannot be written must not end the training
        print(f"wavegms: could not write {path}: {err}", file=sys.stderr)


def ended_line(request, outcome) -> str:
    """How a run ended, in the words of the dock's status line."""
    if outcome.best_model is None:
        return f"stopped before the first epoch ended: no model {request.new_name!r} was made"
    how = "stopped" if outcome.cancelled else "done"
    return (
        f"{how}: model {request.new_name!r} ready from epoch {outcome.best_epoch} of "
        f"{outcome.epochs_done}, validation Dice {outcome.best_val_dice:.3f} on "
        f"{outcome.val_images} image(s); not installed until it is reviewed in napari (its "
        "name stays reserved)"
    )


def outcome_message(outcome) -> dict:
    """A ``FinetuneOutcome`` as plain values (paths as text)."""
    return {
        key: str(value) if isinstance(value, PurePath) else value
        for key, value in dataclasses.asdict(outcome).items()
    }


class Link:
    """The child's side: reports go to the parent while it listens; its commands (and its
    end) become a cancellation the trainer sees at its next batch."""

    def __init__(
        self, commands: BinaryIO, messages: BinaryIO, cancel, log: Callable[[str], None]
    ) -> None:
        self.commands, self.messages, self.cancel, self.log = commands, messages, cancel, log
        self.detached = False
        self.parent_gone = False
        self._lock = threading.Lock()
        threading.Thread(target=self._listen, name="wavegms-commands", daemon=True).start()

    def _listen(self) -> None:
        while True:
            try:
                command = read_frame(self.commands)
            except (EOFError, OSError):
                command = None
            if command == "detach":
                self.detached = True
                self.log("goes on in the background (the dock or napari was closed)")
            elif command == "stop":
                self.cancel.cancel()
            elif command is None:
                self._orphaned()
                return

    def _orphaned(self) -> None:
        if self.parent_gone:  # once: the pipe's end and a failed send may both tell
            return
        self.parent_gone = True
        if not self.detached:
            self.cancel.cancel()
            timer = threading.Timer(ORPHAN_GRACE_S, os._exit, args=(3,))
            timer.daemon = True
            timer.start()

    def send(self, kind: str, payload: object) -> None:
        if self.parent_gone and self.detached:
            return
        try:
            with self._lock:
                send_frame(self.messages, (kind, payload))
        except (BrokenPipeError, OSError):
            self._orphaned()

    def __call__(self, report) -> None:  # the library's progress callback
        self.send("progress", report)


def main() -> int:
    """The child: read the request, fine-tune, report; stdout is kept for frames only."""
    messages = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed (by us or by libraries) goes to stderr, not the frames
    sys.stdout = sys.stderr
    commands = sys.stdin.buffer
    request = read_frame(commands)

    from wavegms.core.progress import CancelToken
    from wavegms.inference.adoption import train_run_folds
    from wavegms.napari.jobs import error_text
    from wavegms.training.finetune import finetune

    def log(line: str) -> None:
        log_line(request.out_dir, line)

    cancel = CancelToken()
    link = Link(commands, messages, cancel, log)
    log(f"started: fine-tuning {request.new_name!r} from {request.base_model!r}")
    try:
        # Nothing installed on its own: the dock installs once the user or the comparison
        # with the current model has decided (inference.adoption).
        outcome = finetune(request, progress=link, cancel=cancel, install=False)
        if outcome.best_model is not None and not outcome.cancelled:
            folds = train_run_folds(request, progress=link, cancel=cancel)  # few pairs only
            if folds:
                log(f"k-fold check: {folds} fold model(s) fine-tuned")
    except Exception as err:
        log(f"failed: {error_text(err)}")
        link.send("error", error_text(err))
        print(f"wavegms fine-tune failed: {error_text(err)}", file=sys.stderr)
        return 1
    log(ended_line(request, outcome))
    link.send("done", outcome_message(outcome))
    if link.parent_gone:  # nobody to show it to: say it where a terminal may see it
        print(f"wavegms fine-tune {ended_line(request, outcome)}; record in "
              f"{Path(outcome.run_dir) / LOG_NAME}", file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # Not sys.exit: the command listener may be blocked reading stdin, and the interpreter's
    # shutdown then aborts on that stream's lock ("could not acquire lock ... at shutdown").
    os._exit(code)
