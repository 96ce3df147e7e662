"""Scoring one segmented image against its ground truth, and the mean/std of a run.

The protocol (the paper's, kept here as the one reference): each image is scored twice,

* at model size (the paper's protocol): prediction = model-size soft mask > threshold, ground
  truth resized with nearest neighbour to model size, then >= 0.5;
* at native resolution (what a user sees): the soft mask resized bilinearly to the image's
  shape, then > threshold, against the original mask.

The ``_224`` columns hold the model-size scores whatever the model size is (224 for the
shipped models), so that tables of different runs line up. numpy/scipy only: no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from wavegms.data.preprocess import mask_to_model_size
from wavegms.scoring.metrics import (
    HD95_CONVENTION,
    OVERLAP_CONVENTION,
    STD_DEFINITION,
    score,
    summarise,
)

#: per-image score columns: DSC and IoU in %, HD95 in pixels
SCORE_KEYS = ("dsc_224", "iou_224", "hd95_224", "dsc_native", "iou_native", "hd95_native")

#: what a run's mean/std covers: the scores and the predicted area at native size
SUMMARY_KEYS = (*SCORE_KEYS, "mask_area")

UNITS = {"dsc": "%", "iou": "%", "hd95": "pixels", "mask_area": "pixels"}


def score_image(
    small_soft: np.ndarray, native_binary: np.ndarray, truth: np.ndarray, threshold: float
) -> dict[str, float]:
    """The score columns of one image: ``small_soft`` is the model-size soft mask,
    ``native_binary`` the prediction at the image's size (its soft mask resized bilinearly,
    then thresholded) and ``truth`` the boolean ground truth at the image's size."""
    at_model = score(small_soft > threshold, mask_to_model_size(truth, small_soft.shape[0]))
    at_native = score(native_binary, truth)
    return {
        "dsc_224": 100.0 * at_model["dsc"],
        "iou_224": 100.0 * at_model["iou"],
        "hd95_224": at_model["hd95"],
        "dsc_native": 100.0 * at_native["dsc"],
        "iou_native": 100.0 * at_native["iou"],
        "hd95_native": at_native["hd95"],
    }


def summarise_scores(rows: Sequence[dict]) -> dict[str, tuple[float, float]]:
    """Mean and population std of :data:`SUMMARY_KEYS` over scored rows."""
    return summarise(rows, SUMMARY_KEYS)


def score_table(summary: dict[str, tuple[float, float]], model_size: int) -> list[str]:
    """Mean ± std at model size and native, then the conventions the numbers follow."""
    at_model = f"{model_size}x{model_size}"
    lines = [f"{'metric':<10}{at_model:>20}{'native':>20}"]
    for key, label, unit in (("dsc", "DSC", "%"), ("iou", "IoU", "%"), ("hd95", "HD95", "px")):
        cells = []
        for suffix in ("224", "native"):
            mean, std = summary[f"{key}_{suffix}"]
            cells.append(f"{mean:.2f} ± {std:.2f}")
        lines.append(f"{label + ' ' + unit:<10}{cells[0]:>20}{cells[1]:>20}")
    return [*lines, f"std: {STD_DEFINITION}", OVERLAP_CONVENTION, HD95_CONVENTION]


def summary_record(
    summary: dict[str, tuple[float, float]],
    n_images: int,
    threshold: float,
    model_size: int,
    complete: bool,
) -> dict[str, Any]:
    """What ``summary.json`` holds: the mean/std with the conventions they follow."""
    return {
        "n_images": n_images,
        "complete": complete,  # False: the run was cancelled; the numbers cover n_images only
        "threshold": threshold,
        "model_size": model_size,
        "hd95_convention": HD95_CONVENTION,
        "overlap_convention": OVERLAP_CONVENTION,
        "std_definition": STD_DEFINITION,
        "units": UNITS,
        "summary": {k: {"mean": m, "std": s} for k, (m, s) in summary.items()},
    }
