"""Starting or reaching the dask cluster of a distributed folder run
(:mod:`wavegms.inference.folder_dask`): a local cluster of worker processes or a running
scheduler, each problem found before dask starts where it can be, else one line that says
what to do (never dask's chained tracebacks). dask is imported only when a cluster starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wavegms.core.errors import InputError, WaveGMSError

if TYPE_CHECKING:
    from distributed import Client


@dataclass(frozen=True)
class WorkerModel:
    """What a worker of the cluster needs to load the model itself: its file (at a path every
    worker sees), the device (``auto`` resolves on each worker) and the settings it runs
    with."""

    path: str
    device: str = "auto"
    batch_size: int = 8
    torch_threads: int | None = None  # None: torch's default on that worker
    backend: str = "auto"  # the Segmenter's backend (auto: the fastest exact graph on CPU)


def import_distributed() -> Any:
    """``distributed``, or a one-line error saying how to install it."""
    from wavegms.core.extras import require

    return require("distributed", "distributed folder runs (--workers, --scheduler)")


#: a scheduler address another process can reach: a protocol dask's workers speak over the
#: network, a host, a port (which ``HOST:PORT`` alone needs)
_HOST = r"(?:\[[0-9a-fA-F:]+\]|[^\s/:\[\]@]+)"
SCHEDULER_ADDRESS = re.compile(
    rf"^(?:(?:tcp|tls|ucx|ws|wss)://{_HOST}(?::\d{{1,5}})?|{_HOST}:\d{{1,5}})$"
)


def check_cluster(workers: int | None, scheduler: str | None) -> None:
    """Refuse, before dask starts, a cluster that cannot work: more local workers than CPU
    cores (each runs the model on a core of its own: 64 on 2 cores only fail), or a
    scheduler address no worker could reach (``inproc://`` lives in one process only)."""
    if (workers is None) == (scheduler is None):
        raise InputError("give either a number of workers or a scheduler address")
    if scheduler is not None and not SCHEDULER_ADDRESS.fullmatch(scheduler.strip()):
        raise InputError(
            f"--scheduler {scheduler!r} is no dask scheduler address; give it as "
            "tcp://HOST:PORT (as the scheduler prints it, e.g. tcp://10.0.0.5:8786)"
        )
    if workers is not None and not _loopback_works():
        raise WaveGMSError(
            "a local dask cluster talks over the loopback network (127.0.0.1), which this "
            "machine does not offer now; run without --workers to segment in this process"
        )
    cores = os.cpu_count() or 1
    if workers is not None and not 1 <= workers <= cores:
        raise InputError(
            f"--workers {workers}: this machine has {cores} CPU core(s), so use 1 to {cores} "
            "workers (each runs the model on a core of its own)"
        )


def _loopback_works() -> bool:
    """Whether a connection to 127.0.0.1 can be made: without it (a container with no
    network) dask's local cluster only times out after a minute."""
    try:
        with (
            socket.create_server(("127.0.0.1", 0)) as server,
            socket.create_connection(server.getsockname(), timeout=5),
        ):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Client]:
    """A client of the cluster at ``scheduler``, or of a local cluster of ``workers``
    processes (one thread each) that ends with the block. A cluster that cannot start or a
    scheduler that cannot be reached is one :class:`WaveGMSError` line."""
    check_cluster(workers, scheduler)
    distributed = import_distributed()
    if scheduler is not None:
        with _started(f"cannot reach the dask scheduler at {scheduler}"):
            client = distributed.Client(scheduler.strip(), timeout="30s")
        with client:
            yield client
        return
    with _started(f"cannot start a local dask cluster of {workers} worker(s)"):
        cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True,
            dashboard_address=":0", silence_logs=logging.CRITICAL,  # any free port: no clash
        )  # fmt: skip
    with cluster, distributed.Client(cluster) as client:
        yield client


@contextlib.contextmanager
def _started(what: str) -> Iterator[None]:
    """Whatever dask raises while a cluster starts (OSError, TimeoutError, ValueError,
    RuntimeError from its event loop) as one line that says what to do."""
    try:
        yield
    except Exception as err:
        reason = " ".join(str(err).split())[:300] or type(err).__name__
        raise WaveGMSError(
            f"{what} ({reason}); run without --workers/--scheduler to segment on this "
            "machine, or check that the network (loopback included) is up"
        ) from None


def local_torch_threads(workers: int) -> int:
    """torch threads per worker of a local cluster: the cores shared out, at least one."""
    return max(1, (os.cpu_count() or 1) // workers)
