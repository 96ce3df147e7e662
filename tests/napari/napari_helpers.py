"""Helpers shared by the napari plugin tests (imported by name: tests/napari is on sys.path)."""

from __future__ import annotations

import numpy as np

WAIT_MS = 120_000  # generous: the 2 CPU cores may be shared with other work


def speckle(shape, seed: int = 0, dtype=np.uint8) -> np.ndarray:
    """A small synthetic image with a dark disc, of the given shape and dtype."""
    rng = np.random.default_rng(seed)
    values = rng.random(shape)
    h, w = shape[:2]
    yy, xx = np.mgrid[:h, :w]
    disc = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 4) ** 2
    values[disc] *= 0.3
    if np.issubdtype(dtype, np.integer):
        return (values * np.iinfo(dtype).max).astype(dtype)
    return values.astype(dtype)


def disc_mask(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 4) ** 2).astype(np.uint8)


def wait_idle(qtbot, widget, attribute: str = "busy", timeout: int = WAIT_MS) -> None:
    """Wait until a widget's worker/process has finished."""
    qtbot.waitUntil(lambda: not getattr(widget, attribute), timeout=timeout)
