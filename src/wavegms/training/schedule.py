"""When a run's learning rate and length change.

Per epoch: a linear warm-up, then a cosine to 0 by the last epoch (the paper's schedule).
Per step: a short re-warm after a run resumes without its optimiser moments (a committed
checkpoint carries weights, not moments: a fresh AdamW at full learning rate would take
large first steps). Per run: the number of epochs that a wall-clock budget allows.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

BUDGET_MEASURED_EPOCHS = 2  # epochs timed before a time budget fixes the number of epochs
BUDGET_MARGIN = 0.95  # share of the remaining budget planned for (epochs vary a little)
REWARM_STEPS = 50  # optimiser steps over which a run resumed without moments ramps up


def clock() -> float:
    """Seconds on a monotonic clock (one place, so tests can run a budget on a fake clock)."""
    return time.perf_counter()


def lr_factor(epoch: int, epochs: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` epochs, then cosine to 0 by the last epoch (per epoch)."""
    if epoch < warmup:
        return (epoch + 1) / warmup
    span = max(1, epochs - warmup)
    return 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / span))


def rewarm_factor(steps_done: int, rewarm_steps: int) -> float:
    """The share of the scheduled learning rate for the next step of a re-warm (1 when none)."""
    if rewarm_steps <= 0:
        return 1.0
    return min(1.0, (steps_done + 1) / rewarm_steps)


def budget_epochs(
    budget: float,
    elapsed: float,
    loop_seconds: float,
    epochs_timed: int,
    epoch: int,
    epochs: int,
) -> int | None:
    """The run's length once a time budget decides it, else None (still timing epochs).

    ``elapsed`` counts from the run's start (loading data is part of the budget);
    ``loop_seconds`` over ``epochs_timed`` epochs gives the time per epoch, without loading
    and target caching. It decides after :data:`BUDGET_MEASURED_EPOCHS` epochs, or sooner when
    the next epoch would not fit."""
    per_epoch = loop_seconds / epochs_timed
    left = budget - elapsed
    fits = BUDGET_MARGIN * left / per_epoch if per_epoch > 0 else math.inf
    if epochs_timed < BUDGET_MEASURED_EPOCHS and fits >= 1:
        return None
    more = epochs if math.isinf(fits) else max(0, math.floor(fits))
    return min(epochs, epoch + more)


@dataclass
class EpochTimes:
    """The seconds of this session's epochs on the budget's clock, full-size and low-res apart.

    Each epoch's share runs from the end of the one before (or the start of the loop), so that
    with only full-size epochs their sum is the whole loop's time. The planner times only the
    full-size ones: the epochs it plans are full-size, and planning from the cheap low-res
    ones (a quarter of the cost) would plan four times too many. The low-res epochs' time
    counts in the elapsed time, as the data loading does."""

    mark: float  # the clock when the last epoch ended (or the loop started)
    full_seconds: float = 0.0
    full_epochs: int = 0
    low_seconds: float = 0.0
    low_epochs: int = 0

    def add(self, now: float, low_res: bool) -> None:
        """An epoch ended at ``now``; ``low_res``: it trained at the low size."""
        seconds, self.mark = now - self.mark, now
        if low_res:
            self.low_seconds, self.low_epochs = self.low_seconds + seconds, self.low_epochs + 1
        else:
            self.full_seconds, self.full_epochs = self.full_seconds + seconds, self.full_epochs + 1

    def per_epoch(self) -> float:
        """Seconds per full-size epoch, or per low-res one while none is timed."""
        if self.full_epochs:
            return self.full_seconds / self.full_epochs
        return self.low_seconds / self.low_epochs if self.low_epochs else 0.0


def budget_plan(
    budget: float, elapsed: float, times: EpochTimes, epoch: int, epochs: int
) -> int | None:
    """:func:`budget_epochs` from the full-size epochs of ``times``. While only low-res epochs
    are timed it decides only when the next one would not fit (the run then ends where it is):
    what a full-size epoch costs is not known yet."""
    if times.full_epochs:
        return budget_epochs(budget, elapsed, times.full_seconds, times.full_epochs, epoch, epochs)
    if times.low_epochs and BUDGET_MARGIN * (budget - elapsed) < times.per_epoch():
        return epoch
    return None
