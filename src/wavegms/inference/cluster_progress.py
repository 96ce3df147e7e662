"""Progress of a folder run on a dask cluster, image by image rather than share by share.

Each worker sends, as its share goes, how many more images it has finished as an event on the
run's topic (:func:`worker_progress`); the client counts them as they arrive
(:class:`ClusterProgress`), so a run of 20 images on two workers shows 1, 2, 3 ... rather than
jumping from 0 to 20 when the first share returns.
"""

from __future__ import annotations

import threading

from wavegms.core.progress import Progress, ProgressCallback, report


def worker_progress(topic: str | None) -> ProgressCallback | None:
    """On a worker: a progress callback for one share that logs each increase of its count
    as an event on ``topic`` (None: no events)."""
    if topic is None:
        return None
    from distributed import get_worker

    worker = get_worker()
    last = 0

    def send(p: Progress) -> None:
        nonlocal last
        if p.done > last:
            worker.log_event(topic, p.done - last)
            last = p.done

    return send


class ClusterProgress:
    """On the client: counts the images the workers report on ``topic`` and reports the
    total, never going back (a share's result may arrive before its last events)."""

    def __init__(
        self, client, topic: str, progress: ProgressCallback | None, stage: str, total: int
    ):
        self.client, self.topic, self.progress = client, topic, progress
        self.stage, self.total = stage, total
        self._counted = self._shown = 0
        self._lock = threading.Lock()

    def start(self) -> ClusterProgress:
        if self.progress is not None:
            self.client.subscribe_topic(self.topic, self._event)
        return self

    def stop(self) -> None:
        if self.progress is not None:
            self.client.unsubscribe_topic(self.topic)

    def _event(self, event) -> None:
        _, images = event  # (time, message)
        with self._lock:
            self._counted += int(images)
        self.show(0)

    def show(self, at_least: int, message: str = "") -> None:
        """Report the count (or ``at_least``, what finished shares hold) if it has grown."""
        with self._lock:
            done = min(self.total, max(self._counted, at_least))
            if done <= self._shown:
                return
            self._shown = done
        report(self.progress, self.stage, done, self.total, message)
