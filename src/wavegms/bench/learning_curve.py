"""Equal-budget learning curves: validation Dice against CPU-seconds for training configs run
with the same time budget, seed and validation split, each in a fresh run folder.

CPU-seconds are the process's own (``time.process_time``, all its threads), counted from
before the data is read, so target caching and loading are charged to the config that needs
them; another process on the machine does not inflate them as it inflates wall time.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from wavegms.core.errors import InputError
from wavegms.training.config import TrainConfig

Curve = list[tuple[float, float]]  # (CPU-seconds since start, validation Dice) per epoch


def learning_curve(config: TrainConfig, budget_s: float, run_dir: Path) -> Curve:
    """Train ``config`` for ``budget_s`` CPU-seconds of this process in ``run_dir``; its curve.

    The budget is counted on the same CPU clock as the curve (``budget_cpu``): a config does
    not get fewer epochs because other work shared the machine while it ran."""
    from wavegms.training.trainer import train

    start, points = time.process_time(), []

    def record(p) -> None:
        if p.stage == "epoch":
            points.append((time.process_time() - start, float(p.metrics["val_dice"])))

    run = dataclasses.replace(config, out_dir=str(run_dir), time_budget_s=budget_s, budget_cpu=True)
    train(run, progress=record)
    return points


def dice_gain_rate(curve: Curve, start_dice: float) -> float:
    """Best validation Dice gained per CPU-hour over the whole curve (0 for no epoch)."""
    if not curve:
        return 0.0
    best = max(d for _, d in curve)
    return (best - start_dice) / (curve[-1][0] / 3600)


def time_to_reach(curve: Curve, dice: float) -> float | None:
    """CPU-seconds of the first epoch whose validation Dice reaches ``dice``; None if none."""
    return next((s for s, d in curve if d >= dice), None)


def format_comparison(curves: dict[str, Curve]) -> str:
    """Each curve against the first (the reference): its best Dice, its Dice points per
    CPU-hour, and the CPU-seconds it took to reach the reference's best Dice. The last
    reading is the fairer one for a speed-up: Dice rises ever slower, so a curve that stops
    sooner earns more points per hour without learning any faster."""
    (ref_name, ref), *_ = curves.items()
    if not ref:
        return f"{ref_name}: no epoch ended; nothing to compare against"
    target = max(d for _, d in ref)
    ref_rate, ref_time = dice_gain_rate(ref, 0.0), time_to_reach(ref, target)
    lines = [
        f"against {ref_name}: its best validation Dice {100 * target:.2f} at {ref_time:.0f} CPU-s"
    ]
    for name, curve in curves.items():
        if not curve:
            lines.append(f"{name}: no epoch ended")
            continue
        rate, reached = dice_gain_rate(curve, 0.0), time_to_reach(curve, target)
        when = (
            f"reached it at {reached:.0f} CPU-s ({ref_time / reached:.2f}x)"
            if reached is not None
            else "never reached it"
        )
        # a reference that learned nothing (Dice 0) gives no ratio, not a ZeroDivisionError
        ratio = f" ({rate / ref_rate:.2f}x)" if ref_rate > 0 else ""
        lines.append(
            f"{name}: best {100 * max(d for _, d in curve):.2f}, "
            f"{100 * rate:.1f} Dice points per CPU-hour{ratio}, {when}"
        )
    return "\n".join(lines)


def format_curves(curves: dict[str, Curve]) -> str:
    lines = []
    for name, curve in curves.items():
        points = ", ".join(f"{s:.0f}s:{100 * d:.2f}" for s, d in curve)
        lines.append(f"{name}: {points or 'no epoch ended'}")
    return "\n".join(lines)


def plot_curves(curves: dict[str, Curve], path: Path, title: str) -> Path:
    """A PNG of the curves (matplotlib, which the napari and test extras bring)."""
    try:
        import matplotlib
    except ImportError as err:
        raise InputError(
            "plotting the curves needs matplotlib: pip install 'napari-wavegms[napari]'"
        ) from err

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name, curve in curves.items():
        if curve:
            ax.plot([s / 60 for s, _ in curve], [100 * d for _, d in curve], "o-", label=name)
    ax.set_xlabel("CPU-minutes (process time, data loading and target caching included)")
    ax.set_ylabel("validation Dice (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
