"""Progress reports and cancellation shared by the library, the CLI and the napari layer.

Long work (training, folder segmentation, evaluation) takes an optional ``progress`` callback
receiving small :class:`Progress` objects, and an optional :class:`CancelToken`. The command line
renders reports as a text bar, the napari layer as a progress bar and a plot.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from wavegms.core.errors import Cancelled


@dataclass(frozen=True)
class Progress:
    """One step of long work: ``done`` of ``total`` units of ``stage``, plus optional numbers."""

    stage: str
    done: int
    total: int
    message: str = ""
    metrics: dict[str, float] = field(default_factory=dict)


ProgressCallback = Callable[[Progress], None]


class CancelToken:
    """A thread-safe flag that long work polls between units of work."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


def report(progress: ProgressCallback | None, *args, **kwargs) -> None:
    """Send a :class:`Progress` to ``progress`` if there is one."""
    if progress is not None:
        progress(Progress(*args, **kwargs))


def check_cancel(cancel: CancelToken | None) -> None:
    if cancel is not None:
        cancel.raise_if_cancelled()


class Eta:
    """Time left, from how far work is (a fraction 0-1) and how long it has taken so far.

    The clock starts at the first update (the first unit's setup, e.g. loading, is not part
    of the rate); no estimate until some progress has been made since then."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._start: tuple[float, float] | None = None  # (time, fraction) of the first update

    def update(self, fraction: float) -> float | None:
        now = self._clock()
        if self._start is None:
            self._start = (now, fraction)
            return None
        t0, f0 = self._start
        if fraction <= f0 or now <= t0:
            return None
        return max(0.0, (now - t0) / (fraction - f0) * (1.0 - fraction))


class TextProgressBar:
    """The command line's renderer: one self-overwriting line per stage on stderr."""

    def __init__(self, stream=None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width

    def __call__(self, p: Progress) -> None:
        frac = p.done / p.total if p.total else 1.0
        filled = round(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        extras = " ".join(f"{k}={v:.4g}" for k, v in p.metrics.items())
        line = f"\r{p.stage:>10} [{bar}] {p.done}/{p.total} {p.message} {extras}".rstrip()
        self.stream.write(line)
        if p.done >= p.total:
            self.stream.write("\n")
        self.stream.flush()
