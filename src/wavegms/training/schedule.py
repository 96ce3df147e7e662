"""When a run's learning rate and length change.

Per epoch: a linear warm-up, then a cosine to 0 by the last epoch (the paper's schedule).
Per step: a short re-warm after a run resumes without its optimiser moments (a committed
checkpoint carries weights, not moments: a fresh AdamW at full learning rate would take
large first steps). Per run: the number of epochs that a wall-clock budget allows.
"""

from __future__ import annotations

import math
import time

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
