"""Checks every front end and job shares: the one threshold check (the segmenter, the docks'
jobs and the folder job's callers refuse a threshold outside [0, 1] in the same words)."""

from __future__ import annotations

import math

from wavegms.core.errors import InputError


def check_threshold(threshold: float) -> float:
    """``threshold`` as a float if it lies in [0, 1]; else a one-line :class:`InputError`."""
    value = float(threshold)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise InputError(f"threshold must be in [0, 1], got {threshold}")
    return value
