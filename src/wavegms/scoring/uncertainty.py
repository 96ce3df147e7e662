"""How unsure the model was about one image, from its soft mask: the review order.

The review loop asks the user to check the images most likely to be wrong first. Wave-GMS
gives a soft mask in [0, 1]; where it is neither near 0 nor near 1 the model hesitated.
:func:`uncertainty` is the one number a run writes per image (``results.csv``, column
``uncertainty``); the other definitions stay here because ``scripts/correction_study.py``
compares them all against the error (Spearman correlation with 1 - DSC).

Chosen definition, :func:`band_share`: the share of the predicted region (soft > 0.3) whose soft
value lies between 0.3 and 0.7. It is a share, so it does not grow with image size or lesion
size, and it is in [0, 1]. An image with no pixel above 0.3 gets 1.0: in a review of images
that show the structure, an empty prediction is the first thing to check.

Measured with the shipped ``busi`` model (``scripts/correction_study.py --part correlation``,
test splits; Spearman rho between each definition and 1 - DSC at native size, p in brackets;
at model size the numbers differ by at most 0.02):

================  ============================  =================================
definition        BUSI test (n=130, DSC 75.8%)  Kvasir-SEG test (n=120, DSC 7.9%)
================  ============================  =================================
band_share        +0.760 (p < 1e-24)            -0.176 (p = 0.055)
region_entropy    +0.744                        -0.207 (p = 0.023)
image_entropy     +0.283 (p = 0.001)            -0.411 (p < 1e-5)
================  ============================  =================================

In the model's own domain the share of hesitant pixels ranks the errors best: the ten most
uncertain BUSI test images have a mean DSC of 28.6%, the ten least uncertain 90.7% (all:
75.8%). The whole-image entropy mostly measures how small the lesion is. Out of its domain
(``busi`` on colonoscopy) no definition works: the model fails on nearly every image (93 of
120 below 10% DSC, 41 with no overlap at all) and is confidently wrong, so a low uncertainty
there does not mean a good mask. The review order is for images like the model's own.

numpy only: no torch, no scipy. It runs on the native-size soft mask in the 1/255 steps of
``soft/<name>.png``, so a resumed run computes the same number from the file.
"""

from __future__ import annotations

import numpy as np

from wavegms.core.errors import InputError

LOW, HIGH = 0.3, 0.7  # the hesitation band
FRINGE = 0.1  # where the prediction's soft border starts

#: Spearman rho with 1 - DSC (native) on the test splits, busi model (the study's output)
MEASURED: dict[str, dict[str, float]] = {
    "busi": {"band_share": 0.760, "region_entropy": 0.744, "image_entropy": 0.283},
    "kvasir_seg": {"band_share": -0.176, "region_entropy": -0.207, "image_entropy": -0.411},
}


def _checked(soft: np.ndarray) -> np.ndarray:
    soft = np.asarray(soft)
    if soft.ndim != 2 or soft.size == 0:
        raise InputError(f"a soft mask must be one non-empty 2D plane, got shape {soft.shape}")
    if np.issubdtype(soft.dtype, np.integer):  # a soft PNG as read back: 0-255
        if soft.min() < 0 or soft.max() > 255:
            raise InputError("a soft mask read as integers must hold values 0-255")
        levels = soft
    else:
        if not np.isfinite(soft).all() or soft.min() < 0.0 or soft.max() > 1.0:
            raise InputError("a soft mask must hold finite values in [0, 1]")
        levels = np.round(soft.astype(np.float32) * 255.0)  # as write_png stores it
    # In 1/255 steps, as the soft PNG holds it: a float mask and the PNG written from it give
    # the very same number, so a resumed run's table equals an uninterrupted one's.
    return levels.astype(np.float32) / 255.0


def band_share(soft: np.ndarray) -> float:
    """Share of the pixels above ``LOW`` that stay below ``HIGH``; 1.0 if none is above LOW."""
    soft = _checked(soft)
    region = int(np.count_nonzero(soft > LOW))
    if region == 0:
        return 1.0
    return int(np.count_nonzero((soft > LOW) & (soft < HIGH))) / region


def _entropy(p: np.ndarray) -> np.ndarray:
    """Binary entropy in bits (0 at 0 and 1, 1 at 0.5)."""
    p = np.clip(p, 1e-6, 1.0 - 1e-6)
    return -(p * np.log2(p) + (1.0 - p) * np.log2(1.0 - p))


def region_entropy(soft: np.ndarray) -> float:
    """Mean binary entropy over the predicted region and its soft border (soft > ``FRINGE``);
    1.0 if that region is empty."""
    soft = _checked(soft)
    region = soft > FRINGE
    if not region.any():
        return 1.0
    return float(_entropy(soft[region]).mean())


def image_entropy(soft: np.ndarray) -> float:
    """Mean binary entropy over the whole image (the baseline: it shrinks as the lesion does)."""
    return float(_entropy(_checked(soft)).mean())


#: every definition the study compares, by the name its tables use
DEFINITIONS = {
    "band_share": band_share,
    "region_entropy": region_entropy,
    "image_entropy": image_entropy,
}


def uncertainty(soft: np.ndarray) -> float:
    """The review uncertainty of one image (see the module docstring): in [0, 1], higher is
    less sure."""
    return band_share(soft)
