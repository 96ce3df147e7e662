"""Segmentation metrics: DSC, IoU and HD95 with stated empty-mask conventions.

numpy/scipy only (no torch) so scoring works anywhere. All functions take two boolean 2-D (or
n-D) arrays of the same shape: the prediction and the ground truth.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy.ndimage import binary_erosion, distance_transform_edt, generate_binary_structure

from wavegms.core.errors import InputError

__all__ = [
    "HD95_CONVENTION",
    "OVERLAP_CONVENTION",
    "STD_DEFINITION",
    "dice",
    "hd95",
    "iou",
    "score",
    "summarise",
]

HD95_CONVENTION = (
    "HD95 in pixels (medpy definition: surfaces by erosion with a cross-shaped structuring "
    "element, surface distances both ways pooled, 95th percentile); both masks empty -> 0; "
    "exactly one mask empty -> the image diagonal sqrt(H^2+W^2)"
)
OVERLAP_CONVENTION = "DSC = 2TP/(2TP+FP+FN), IoU = TP/(TP+FP+FN); both masks empty -> 1 (100%)"
STD_DEFINITION = "population standard deviation over images (numpy std, ddof=0)"


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return both masks as bool arrays, refusing mismatched shapes."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise InputError(f"prediction and ground truth differ in shape: {pred.shape} vs {gt.shape}")
    if pred.ndim == 0:
        raise InputError("masks must have at least one dimension")
    return pred.astype(bool, copy=False), gt.astype(bool, copy=False)


def _confusion(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int, int]:
    tp = int(np.count_nonzero(pred & gt))
    fp = int(np.count_nonzero(pred & ~gt))
    fn = int(np.count_nonzero(~pred & gt))
    return tp, fp, fn


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice similarity coefficient in [0, 1]; 1.0 when both masks are empty."""
    pred, gt = _check_pair(pred, gt)
    tp, fp, fn = _confusion(pred, gt)
    denom = 2 * tp + fp + fn
    return 1.0 if denom == 0 else 2 * tp / denom


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union (Jaccard) in [0, 1]; 1.0 when both masks are empty."""
    pred, gt = _check_pair(pred, gt)
    tp, fp, fn = _confusion(pred, gt)
    denom = tp + fp + fn
    return 1.0 if denom == 0 else tp / denom


def _surface(mask: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    # Pixels outside the image count as background (border_value=0), so an object touching the
    # image edge has its edge pixels on the surface, as in medpy.
    return mask ^ binary_erosion(mask, structure=footprint, iterations=1)


def hd95(pred: np.ndarray, gt: np.ndarray) -> float:
    """95th percentile Hausdorff distance in pixels (see :data:`HD95_CONVENTION`)."""
    pred, gt = _check_pair(pred, gt)
    pred_empty = not pred.any()
    gt_empty = not gt.any()
    if pred_empty and gt_empty:
        return 0.0
    if pred_empty or gt_empty:
        # Never 0 here: an empty prediction is the worst outcome, not a perfect one.
        return float(math.sqrt(sum(s * s for s in pred.shape)))
    footprint = generate_binary_structure(pred.ndim, 1)
    pred_surface = _surface(pred, footprint)
    gt_surface = _surface(gt, footprint)
    # Distance from every pixel to the nearest surface pixel of the other mask.
    dist_to_gt = distance_transform_edt(~gt_surface)
    dist_to_pred = distance_transform_edt(~pred_surface)
    pooled = np.concatenate([dist_to_gt[pred_surface], dist_to_pred[gt_surface]])
    return float(np.percentile(pooled, 95))


def score(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """All three metrics for one image: ``dsc`` and ``iou`` in [0, 1], ``hd95`` in pixels."""
    pred, gt = _check_pair(pred, gt)
    return {"dsc": dice(pred, gt), "iou": iou(pred, gt), "hd95": hd95(pred, gt)}


def summarise(rows: Sequence[dict], keys: Iterable[str]) -> dict[str, tuple[float, float]]:
    """Mean and population std (ddof=0, see :data:`STD_DEFINITION`) of ``keys`` over ``rows``."""
    keys = list(keys)
    if not rows:
        raise InputError("cannot summarise zero rows")
    out: dict[str, tuple[float, float]] = {}
    for key in keys:
        try:
            values = np.array([float(row[key]) for row in rows], dtype=np.float64)
        except KeyError:
            raise InputError(f"metric {key!r} missing from some rows") from None
        out[key] = (float(values.mean()), float(values.std(ddof=0)))
    return out
