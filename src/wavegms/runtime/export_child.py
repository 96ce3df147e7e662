"""The ONNX export of a model file in a child process, for graphs built beside other work.

torch's tracer holds the GIL for seconds at a time while it exports (2.8 s at a stretch
measured on a busy 2-core machine, for the tiny test model), so an export in a background
thread stops every other thread of the process meanwhile, napari's GUI thread included. A
child process holds no GIL of the parent's. Only a model that has a file can be exported
there (the child reads it); the export is what :func:`wavegms.runtime.onnx_graph.export_onnx`
writes, atomically.

A build that wants this (``Segmenter.prepare_graph``'s thread) runs inside
:func:`exports_in_child`; everywhere else (the command line, a build the caller waits for)
the export stays in the calling thread.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

#: the child's entry point (its own module: it imports the exporter, which imports this one)
MODULE = "wavegms.runtime.export_main"

_IN_CHILD: ContextVar[bool] = ContextVar("wavegms_export_in_child", default=False)


@contextmanager
def exports_in_child() -> Iterator[None]:
    """Within the block (this thread's context only), ONNX exports of model files run in a
    child process."""
    token = _IN_CHILD.set(True)
    try:
        yield
    finally:
        _IN_CHILD.reset(token)


def thread_exporting_in_child(function: Callable, model, name: str) -> threading.Thread:
    """A thread, not started and no daemon (one killed inside torch at exit aborts the
    process), that calls ``function(model)`` within :func:`exports_in_child`."""
    return threading.Thread(target=_in_child, args=(function, model), name=name, daemon=False)


def _in_child(function: Callable, model) -> None:
    with exports_in_child():
        function(model)


def wanted() -> bool:
    """Whether an export here should run in a child process (inside :func:`exports_in_child`)."""
    return _IN_CHILD.get()


def export_in_child(model_file: Path, target: Path) -> Path:
    """Export the model of ``model_file`` to ``target`` in a child process and return
    ``target``; RuntimeError with the child's last line if it fails."""
    run = subprocess.run(
        [sys.executable, "-m", MODULE, str(model_file), str(target)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if run.returncode != 0 or not Path(target).is_file():
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        raise RuntimeError(
            f"the export in a child process failed: {lines[-1] if lines else run.returncode}"
        )
    return Path(target)
