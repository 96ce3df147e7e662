"""One run per output folder: a lock file made atomically, naming the run that holds it.

The lock is a small JSON file (pid, host, start time) created with ``O_CREAT | O_EXCL``, so of
two runs started at once exactly one gets it; the other is refused with a line naming the
holder. A lock left by a process that died on this host is taken over with a warning; a lock of
another host cannot be checked and is never taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from wavegms.core.errors import OutputExistsError, OutputWriteError

LOCK_NAME = ".wavegms-run.lock"


class StaleLockWarning(UserWarning):
    """A lock of a run that is no longer alive was taken over."""


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by someone else
        return True
    except OSError:
        return False
    return True


def _holder(lock: Path) -> dict:
    try:
        record = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # being written this instant, or damaged: treated as held
    return record if isinstance(record, dict) else {}


def _describe(record: dict) -> str:
    if not record:
        return "another run"
    started = record.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "?"
    return f"process {record.get('pid')} on {record.get('host')}, started {when}"


def _create(lock: Path) -> bool:
    """Make the lock file if it does not exist; False if it does."""
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    except OSError as err:
        raise OutputWriteError(f"cannot create the lock file {lock}: {err.strerror}") from err
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(record, f)
    return True


def _is_stale(record: dict) -> bool:
    pid = record.get("pid")
    return (
        record.get("host") == socket.gethostname()
        and isinstance(pid, int)
        and pid != os.getpid()
        and not pid_alive(pid)
    )


def acquire(folder: Path) -> Path:
    """Lock ``folder`` for this process; :class:`OutputExistsError` naming the holder if
    another live run has it."""
    lock = folder / LOCK_NAME
    if _create(lock):
        return lock
    record = _holder(lock)
    if _is_stale(record):
        warnings.warn(
            f"{folder} was locked by {_describe(record)}, which is no longer running; "
            "taking the folder over",
            StaleLockWarning,
            stacklevel=3,
        )
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        if _create(lock):
            return lock
        record = _holder(lock)  # another run took it over first
    raise OutputExistsError(
        f"{folder} is in use by {_describe(record)}; wait for that run to end or choose "
        f"another output folder (if no run uses it, delete {lock})"
    )


def release(lock: Path) -> None:
    """Remove the lock if it is still this process's."""
    if _holder(lock).get("pid") == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[Path]:
    """``with folder_lock(out):`` one run at a time in ``out`` (the folder must exist)."""
    lock = acquire(folder)
    try:
        yield lock
    finally:
        release(lock)
