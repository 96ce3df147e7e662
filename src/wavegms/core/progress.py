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


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``1h02m``: a duration as people read one on a progress line."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class TextProgressBar:
    """The command line's renderer on stderr, with the rate and the time left. On a terminal
    one self-overwriting line per stage; elsewhere (a log file, a pipe) plain lines with no
    ``\r``, one at the start, about every tenth of the work or ``every`` seconds, and one at
    the end, so a log of a long run stays short and readable."""

    def __init__(
        self,
        stream=None,
        width: int = 30,
        *,
        terminal: bool | None = None,
        every: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        isatty = getattr(self.stream, "isatty", None)
        self.terminal = bool(isatty and isatty()) if terminal is None else terminal
        self.every = every
        self._clock = clock
        self._stage: str | None = None
        self._eta = Eta(clock)
        self._rate_start: tuple[float, int] | None = None
        self._last_line: tuple[float, int] = (0.0, -1)  # (time, tenth) of the last plain line

    def _timing(self, p: Progress) -> str:
        """``1.9/s ETA 1m02s`` once the work has moved since the first report."""
        now = self._clock()
        if self._stage != p.stage:  # a new stage: its own rate and estimate
            self._stage, self._eta = p.stage, Eta(self._clock)
            self._rate_start = (now, p.done)
        left = self._eta.update(p.done / p.total if p.total else 1.0)
        t0, d0 = self._rate_start or (now, p.done)
        if now <= t0 or p.done <= d0:
            return ""
        rate = (p.done - d0) / (now - t0)
        text = f"{rate:.2f}/s" if rate >= 1 else f"{1 / rate:.1f}s each"
        if left is not None and p.done < p.total:
            text += f" ETA {format_seconds(left)}"
        return text

    def _due(self, p: Progress, finished: bool) -> bool:
        """Whether a plain line is due: first and last report, each tenth, ``every`` s."""
        now = self._clock()
        tenth = int(10 * p.done / p.total) if p.total else 10
        last_time, last_tenth = self._last_line
        if finished or last_tenth < 0 or tenth > last_tenth or now - last_time >= self.every:
            self._last_line = (now, tenth)
            return True
        return False

    def __call__(self, p: Progress) -> None:
        new_stage = self._stage != p.stage
        timing = self._timing(p)
        frac = p.done / p.total if p.total else 1.0
        finished = p.done >= p.total
        extras = " ".join(f"{k}={v:.4g}" for k, v in p.metrics.items())
        counts = f"{p.done}/{p.total}"
        if self.terminal:
            filled = round(frac * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            text = f"{p.stage:>10} [{bar}] {counts} {timing} {p.message} {extras}"
            self.stream.write("\r" + " ".join(text.split()).ljust(79))
            if finished:
                self.stream.write("\n")
        else:
            if new_stage:
                self._last_line = (0.0, -1)
            if not self._due(p, finished):
                return
            text = f"{p.stage}: {counts} ({frac:.0%}) {timing} {p.message} {extras}"
            self.stream.write(" ".join(text.split()) + "\n")
        self.stream.flush()
