"""Training on several processes with torch DistributedDataParallel (DDP).

Two ways in, one run: ``torchrun --nproc_per_node N -m wavegms train --config ...`` (each
process reads its rank from torchrun's environment, :func:`torchrun_ranks`), or
``wavegms train --processes N`` / ``--gpus N`` (this module spawns the N processes itself,
:func:`train_processes`). Each process is one rank running the ordinary
:class:`~wavegms.training.trainer.Trainer`, given its :class:`Ranks`: the model is wrapped in
DDP (gradients averaged over the ranks at every step, so every rank holds the same weights),
each rank trains on its own part of every epoch (``DistributedSampler``: the epoch's
shuffled order, dealt out in turn, padded to equal parts), the epoch's losses are averaged
over the ranks, and only rank 0 writes the run folder (checkpoints, best model, history,
cached views) and reports progress. Resume reads the same ``last.*`` on every rank, so a run
continues as it would have on one process, on the same loss curve for the same number of
ranks. On GPUs each rank takes one (``cuda:LOCAL_RANK``) and talks over NCCL; on CPU the
ranks talk over gloo (how the tests run it).

**Effective batch and learning rate.** ``batch_size`` is per process: one step of N ranks
trains on ``N x batch_size`` images, and an epoch takes ``ceil(images / (N x batch_size))``
steps. The learning rate is used as configured, never scaled behind your back. To keep a
single-process schedule, divide ``batch_size`` by N; to use the bigger batch, the usual linear
rule is ``lr = N x lr_single`` with the warm-up epochs kept (Goyal et al., 2017).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from wavegms.core.errors import InputError, WaveGMSError
from wavegms.training.config import TrainConfig
from wavegms.training.ranks import Ranks


def _backend(config: TrainConfig) -> str:
    from wavegms.core.devices import resolve_device

    return "nccl" if resolve_device(config.device).type == "cuda" else "gloo"


def _start(config: TrainConfig, rank: int, world: int, local_rank: int, init: str) -> Ranks:
    backend = _backend(config)
    device = torch.device("cpu")
    if backend == "nccl":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method=init, rank=rank, world_size=world)
    return Ranks(rank, world, local_rank, device)


def rank_config(config: TrainConfig, ranks: Ranks) -> TrainConfig:
    """The config as this rank runs it: on GPUs, its own one (the device may change on
    resume: it says where a run computes, not what it learns)."""
    if ranks.device.type == "cuda":
        return dataclasses.replace(config, device=str(ranks.device))
    return config


def torchrun_world() -> int:
    """The number of processes torchrun started (1 when not started by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def torchrun_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def train_torchrun(config: TrainConfig, show_progress: bool = False):
    """Train ``config`` as this torchrun process's rank: rank 0's result on rank 0, None on
    the others."""
    from wavegms.core.progress import TextProgressBar

    ranks = torchrun_ranks(config)
    if ranks is None:
        raise InputError("not started by torchrun with more than one process")
    progress = TextProgressBar() if show_progress and ranks.main else None
    try:
        result = train_rank(ranks, config, progress)
    finally:
        dist.destroy_process_group()
    return result if ranks.main else None


def torchrun_ranks(config: TrainConfig) -> Ranks | None:
    """This process's ranks when started by torchrun with more than one process (its
    environment: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), else None."""
    world = torchrun_world()
    if world < 2:
        return None
    rank, local = torchrun_rank(), int(os.environ.get("LOCAL_RANK", "0"))
    return _start(config, rank, world, local, "env://")


def train_rank(ranks: Ranks, config: TrainConfig, progress=None, cancel=None):
    """Run (or resume) ``config`` as this rank; every rank returns the same result."""
    from wavegms.training.trainer import Trainer

    return Trainer(rank_config(config, ranks), progress, cancel, ranks=ranks).run()


def _rank_main(rank: int, world: int, init: str, config, fn, args, results) -> None:
    """One spawned process: join the group, run ``fn(ranks, *args)``, send back its result
    (or the one line of a user error)."""
    if _backend(config) == "gloo":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))  # cores shared out
    ranks = _start(config, rank, world, rank, init)
    try:
        results.put((rank, True, fn(ranks, *args)))
    except WaveGMSError as err:
        results.put((rank, False, str(err)))
    finally:
        dist.destroy_process_group()


def run_ranks(processes: int, config: TrainConfig, fn: Callable, *args: Any) -> list[Any]:
    """Spawn ``processes`` ranks on this machine, each running ``fn(ranks, *args)`` (a
    module-level function); their results in rank order. ``config`` picks the backend."""
    import torch.multiprocessing as mp

    if processes < 1:
        raise InputError(f"processes must be at least 1, got {processes}")
    if _backend(config) == "nccl" and torch.cuda.device_count() < processes:
        raise InputError(
            f"{processes} GPU processes asked for, but this machine has "
            f"{torch.cuda.device_count()} GPU(s)"
        )
    results: dict[int, tuple[bool, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="wavegms-ddp-") as tmp:
        init = (Path(tmp) / "rendezvous").as_uri()  # a file: no port to find or collide on
        queue = mp.get_context("spawn").SimpleQueue()
        context = mp.start_processes(
            _rank_main, (processes, init, config, fn, args, queue), processes,
            join=False, start_method="spawn",
        )  # fmt: skip
        finished = False
        while not finished:
            finished = context.join(timeout=0.2)
            while not queue.empty():  # read as they come: a full pipe would block a rank
                rank, ok, value = queue.get()
                results[rank] = (ok, value)
    errors = [value for ok, value in results.values() if not ok]
    if errors:
        raise WaveGMSError(errors[0])
    return [results[rank][1] for rank in range(processes)]


def _train_spawned(ranks: Ranks, config: TrainConfig, show_progress: bool):
    from wavegms.core.progress import TextProgressBar

    progress = TextProgressBar() if show_progress and ranks.main else None
    return train_rank(ranks, config, progress)


def train_processes(config: TrainConfig, processes: int, show_progress: bool = False):
    """Train ``config`` with DDP on ``processes`` spawned ranks (one per GPU on CUDA, gloo on
    CPU); rank 0's :class:`~wavegms.training.trainer.TrainResult`."""
    return run_ranks(processes, config, _train_spawned, config, show_progress)[0]
