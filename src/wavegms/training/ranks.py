"""One process's place in a DDP run (:class:`Ranks`) and the few collective steps the trainer
takes with it; :mod:`wavegms.training.distributed` starts the ranks, and
:class:`~wavegms.training.trainer.Trainer` runs as one of them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """This process's place in a DDP run, and the few collective steps the trainer takes."""

    rank: int
    world: int
    local_rank: int
    device: torch.device  # where collectives run: cuda:LOCAL_RANK under NCCL, else cpu

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes files and reports progress."""
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in DDP: its trainable gradients averaged over the ranks each step."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        # The LMM's level3 head is trained by no loss (only level2, level1 and out are), so its
        # parameters never get a gradient: DDP must look for such parameters at every step, or
        # it waits for their gradients (its warning that it found none is a false positive).
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)

    def epoch_order(self, dataset: torch.utils.data.Dataset, seed: int, epoch: int):
        """This rank's training indices for ``epoch``: the same shuffle on every rank (seeded
        by seed and epoch, so a resumed run deals the same), dealt out in turn."""
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(dataset, self.world, self.rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        return torch.tensor(list(sampler), dtype=torch.long)

    def average(self, values: dict[str, float]) -> dict[str, float]:
        """The mean of each value over the ranks (every rank trains on equal parts)."""
        keys = sorted(values)
        total = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return {k: float(v) / self.world for k, v in zip(keys, total.tolist(), strict=True)}

    def from_main(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (a decision that must not differ, e.g. a clock's)."""
        box = [value]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (e.g. writes a file), then the others (read it)."""
        if not self.main:
            dist.barrier()
        yield
        if self.main:
            dist.barrier()
