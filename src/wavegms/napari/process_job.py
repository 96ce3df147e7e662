"""The job runner's process backend: a child process that reports over a pipe (fine-tuning).

:class:`ProcessJob` is started by :meth:`wavegms.napari.runner.JobForm.start_process` and ends
through the form's own callbacks, as the thread backend does.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Protocol

from qtpy.QtCore import QTimer

from wavegms.core.errors import Cancelled
from wavegms.napari.feedback import guarded


class JobHost(Protocol):
    """What a :class:`ProcessJob` reports to: the form that started it
    (:class:`wavegms.napari.runner.JobForm`), named here so that this module does not import
    the runner that imports it."""

    status: object  # the form's status line, where a failed poll is shown

    def on_returned(self, result) -> None: ...

    def on_errored(self, err: BaseException | str) -> None: ...

    def _report(self, report) -> None: ...

    def _conclude(self, job, slot: Callable, *args) -> None: ...

    def _finished(self, job) -> None: ...


class ProcessJob:
    """The process backend: a child started as a module (``finetune_job.launch``), so that
    napari stays responsive, the user's ``__main__`` is never re-imported and the child's
    memory is returned when it ends.

    A reader thread collects the child's frames (``("progress", Progress)``, then ``("done",
    result)`` or ``("error", text)``) and a QTimer shows them. Stop sends ``"stop"``: the child
    stops at its next batch (no timeout, no forced end). If napari goes, the child's stdin
    ends and it stops by itself.
    """

    poll_ms = 50  # also the longest a Stop waits to be shown once the child has ended

    def __init__(self, form: JobHost, launch: Callable, payload: object) -> None:
        self.form = form
        self.outcome: tuple[str, object] | None = None
        self.stopping = False
        self.messages: queue.Queue = queue.Queue()
        self.process = launch(payload)
        self._reader = threading.Thread(target=self._read, name="wavegms-job-reader", daemon=True)
        self._reader.start()
        self.timer = QTimer()
        self.timer.setInterval(self.poll_ms)
        self.timer.timeout.connect(guarded(self.poll, form.status))
        self.timer.start()

    def _read(self) -> None:
        from wavegms.napari.finetune_job import read_frame

        while True:
            try:
                self.messages.put(read_frame(self.process.stdout))
            except (EOFError, OSError, ValueError):
                return

    def _command(self, command: str) -> bool:
        from wavegms.napari.finetune_job import send_frame

        try:
            send_frame(self.process.stdin, command)
            return True
        except (BrokenPipeError, OSError, ValueError):  # it has ended already
            return False

    def cancel(self) -> None:
        self.stopping = True
        self._command("stop")

    def detach(self) -> bool:
        """Let the child train on after napari has gone (it installs its model when done)."""
        return self._command("detach")

    def kill(self) -> None:
        self.timer.stop()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(5)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def poll(self) -> None:
        """Render the child's messages; conclude once it has reported how it ended (its
        model is installed by then; its exit, freeing memory, can take a while) or has
        ended without a word."""
        self._drain()
        if self.outcome is not None:
            self._conclude()
        elif not self.alive:
            self._reader.join(1)
            self._drain()  # what it sent just before it ended
            self._conclude()

    def _drain(self) -> None:
        while True:
            try:
                kind, payload = self.messages.get_nowait()
            except queue.Empty:
                return
            if kind == "progress":
                self.form._report(payload)
            else:
                self.outcome = (kind, payload)

    def _conclude(self) -> None:
        self.timer.stop()
        form, exitcode = self.form, self.process.returncode
        kind, payload = self.outcome or ("ended", exitcode)
        if kind == "done":
            form._conclude(self, form.on_returned, payload)
        elif kind == "error":
            form._conclude(self, form.on_errored, str(payload))
        elif self.stopping:
            form._conclude(self, form.on_errored, Cancelled("stopped before the job ended"))
        else:
            text = f"the job's process ended with exit code {exitcode} before it reported"
            form._conclude(self, form.on_errored, text)
        self._close_pipes()
        form._finished(self)

    def _close_pipes(self) -> None:
        """Close the pipes once the child has exited; a child still exiting is waited for in
        a thread (a pipe closed under the reader thread's read could hang it)."""

        def close() -> None:
            self.process.wait()
            self._reader.join(5)
            for pipe in (self.process.stdin, self.process.stdout):
                pipe.close()

        if self.alive:
            threading.Thread(target=close, name="wavegms-job-reaper", daemon=True).start()
        else:
            close()
