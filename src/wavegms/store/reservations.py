"""Model names held by runs that have not installed their model yet.

A fine-tune reserves its new name when it starts: ``<models>/<name>.reserved``, a small JSON
file created with ``O_CREAT | O_EXCL`` (of two runs asking at once exactly one gets it). A
reserved name is refused as a new name (:func:`check_new_model_name`) to every run but
the one holding it, so a restart of napari or a second run can never take it or overwrite the
model the first run installs. The file stays until the user has reviewed the run's outcome
(adopted, declined or installed its model): :func:`open_runs` lists what is left after a
restart, each run still running or finished and waiting for a decision.

Torch-free and Qt-free (the docks list reservations on the GUI thread's behalf, in a worker).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from wavegms.core.errors import InputError, WaveGMSError
from wavegms.core.files import read_json, write_json
from wavegms.core.lock import pid_alive
from wavegms.store.catalogue import check_model_name, model_paths, shipped_models

__all__ = [
    "Reservation",
    "check_new_model_name",
    "open_runs",
    "pid_alive",
    "release_name",
    "reserve_name",
]

SUFFIX = ".reserved"
RUNNING, FINISHED = "running", "finished"


def reservation_path(name: str) -> Path:
    from wavegms.store.paths import user_models_dir

    return user_models_dir() / f"{name}{SUFFIX}"


@dataclass(frozen=True)
class Reservation:
    """One reserved name: the run holding it and how far that run got."""

    name: str
    run_dir: str
    pid: int
    host: str
    started: float
    state: str = RUNNING  # RUNNING, then FINISHED (``outcome`` set) once the run has ended
    outcome: dict | None = None

    @property
    def alive(self) -> bool:
        """Whether the run's process still runs (a run of another host counts as alive)."""
        return self.host != socket.gethostname() or pid_alive(self.pid)

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.started))
        if self.state == FINISHED:
            return f"{self.name}: finished, not reviewed yet (started {when})"
        if self.alive:
            return f"{self.name}: running (process {self.pid}, started {when})"
        return f"{self.name}: ended without a result (started {when}; run folder {self.run_dir})"


def read_reservation(name: str) -> Reservation | None:
    path = reservation_path(name)
    if not path.is_file():
        return None
    try:
        return Reservation(**read_json(path))
    except (TypeError, WaveGMSError):
        # Damaged or being written this instant: the name stays held, by nobody known.
        return Reservation(name, "", -1, "", path.stat().st_mtime)


def check_new_model_name(name: str, reserved_by: str | Path | None = None) -> Path:
    """Where a new user model called ``name`` goes; refuses shipped names, existing models and
    names reserved by a run other than the one in ``reserved_by``,
    so that nothing the user made, no shipped model and no running fine-tune's result is
    ever overwritten."""
    from wavegms.store.paths import user_models_dir

    check_model_name(name)
    if name in shipped_models():
        raise InputError(f"{name!r} is the name of a shipped model; choose another name")
    target = user_models_dir() / name
    if any(p.exists() for p in model_paths(target)):
        raise InputError(f"a model named {name!r} already exists in {target.parent}")
    held = read_reservation(name)
    if held is not None and (reserved_by is None or held.run_dir != str(Path(reserved_by))):
        raise InputError(f"the model name {name!r} is reserved by a fine-tune ({held.describe()})")
    return target


def reserve_name(name: str, run_dir: str | Path) -> Reservation:
    """Hold ``name`` for the run in ``run_dir`` (again, if that run holds it already);
    :class:`InputError` if the name is taken by a model or another run."""
    check_new_model_name(name, reserved_by=run_dir)
    held = read_reservation(name)
    if held is not None:  # by this run (check_new_model_name refused any other)
        _update(name, pid=os.getpid())  # the process doing the run's work now (a child)
        return read_reservation(name) or held
    record = Reservation(name, str(Path(run_dir)), os.getpid(), socket.gethostname(), time.time())
    path = reservation_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise InputError(f"the model name {name!r} was just reserved by another run") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(record.__dict__, f)
    return record


def mark_finished(name: str, outcome: dict) -> None:
    """The run has ended with ``outcome`` (plain values); the name stays held until review."""
    _update(name, state=FINISHED, outcome=outcome)


def _update(name: str, **fields) -> None:
    held = read_reservation(name)
    if held is not None and held.pid != -1:
        write_json(reservation_path(name), {**held.__dict__, **fields})


def release_name(name: str) -> None:
    """The run's outcome is reviewed (or its model installed): the name is free again, or
    taken by the installed model."""
    with contextlib.suppress(FileNotFoundError):
        reservation_path(name).unlink()


def reserved_names() -> set[str]:
    from wavegms.store.paths import user_models_dir

    folder = user_models_dir()
    return {p.name[: -len(SUFFIX)] for p in folder.glob(f"*{SUFFIX}")} if folder.is_dir() else set()


def open_runs() -> list[Reservation]:
    """Every run whose name is still held, oldest first: running, or finished and waiting for
    the user's decision, or ended without a word."""
    runs = [r for r in map(read_reservation, sorted(reserved_names())) if r is not None]
    return sorted(runs, key=lambda r: r.started)
