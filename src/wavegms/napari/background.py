"""A fine-tune that trains on in the background after its dock or napari's window was closed.

While napari runs, the finished run is told in a napari notification and the new model
appears in the Segment docks' model lists. The child process records how it went in the run
folder's ``training.log`` (``finetune_job``), which is what a user finds once napari has gone;
the next fine-tune dock opened tells a run that ended while napari was closed, once.
"""

from __future__ import annotations

from pathlib import Path

from napari.utils.notifications import show_info, show_warning

from wavegms.core.errors import Cancelled
from wavegms.napari.finetune_fields import outcome_text
from wavegms.napari.finetune_job import LOG_NAME, log_line
from wavegms.napari.process_job import ProcessJob

#: The runs being watched (a watcher must outlive the form that started it).
WATCHED: set[BackgroundTraining] = set()
#: The log line that marks a background run's end as told to the user.
TOLD = "told in napari"
_SENT_AWAY = "goes on in the background"
_ENDS = (" done: ", " stopped", " failed: ")
_STAMP = len("2026-01-01 12:00:00 ")


class BackgroundTraining:
    """Takes over a running :class:`ProcessJob` from its form: the job keeps being polled, its
    progress goes nowhere and its end becomes a notification (the job calls the methods a
    form has: ``_report``, ``_conclude``, ``on_returned``, ``on_errored``, ``_finished``)."""

    def __init__(self, job: ProcessJob, name: str, run_dir: Path, viewer) -> None:
        self.job, self.name, self.viewer = job, name, viewer
        self.log = Path(run_dir) / LOG_NAME
        self.told = ""  # the notification given when it ended
        job.form = self
        WATCHED.add(self)

    def _report(self, report) -> None:
        pass  # nobody sees the dock any more

    def _conclude(self, job, slot, *args) -> None:
        slot(*args)

    def on_returned(self, outcome: dict) -> None:
        log_line(self.log.parent, TOLD)
        if outcome["best_model"] in (None, "None"):
            self.tell(f"background fine-tune of {self.name!r} stopped before an epoch ended: "
                      f"no model was made (record: {self.log})", warn=True)  # fmt: skip
            return
        self.tell(
            f"background fine-tune {outcome_text(self.name, outcome)}; not installed until "
            f"you review it in the Fine-tune dock, its name stays reserved (record: {self.log})"
        )

    def on_errored(self, err: BaseException | str) -> None:
        log_line(self.log.parent, TOLD)
        if isinstance(err, Cancelled):
            err = "stopped"
        self.tell(f"background fine-tune of {self.name!r} failed: {err} (record: {self.log})",
                  warn=True)  # fmt: skip

    def _finished(self, job) -> None:
        WATCHED.discard(self)

    def tell(self, text: str, warn: bool = False) -> None:
        self.told = text
        (show_warning if warn else show_info)(text)


def refresh_model_lists(viewer, select: str | None = None) -> None:
    """Re-list the models in the viewer's Segment docks (and select ``select`` there)."""
    from wavegms.napari.segment import SegmentWidget

    try:
        docks = list(viewer.window.dock_widgets.values())
    except (AttributeError, RuntimeError):  # the window has gone
        return
    for widget in docks:
        if isinstance(widget, SegmentWidget):
            widget.refresh_models(select=select)


def untold_background_ends() -> list[tuple[Path, str]]:
    """(run folder, how it ended) of each background run that ended while napari was closed
    and has not been told yet (its ``training.log`` ends on its end line)."""
    from wavegms.store.paths import runs_dir

    ends = []
    for log in sorted(runs_dir().glob(f"*/{LOG_NAME}")):
        try:
            lines = log.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        sent_away = any(_SENT_AWAY in line for line in lines)
        if sent_away and lines and any(end in lines[-1] for end in _ENDS):
            ends.append((log.parent, lines[-1][_STAMP:]))
    return ends


def tell_background_ends(status) -> None:
    """Tell (in ``status`` and a notification) the background runs that ended while napari was
    closed, each once."""
    for run_dir, end in untold_background_ends():
        status.value = f"a fine-tune left in the background has ended: {end} ({run_dir})"
        show_info(status.value)
        log_line(run_dir, TOLD)
