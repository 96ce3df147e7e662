"""Metrics against hand-computed cases and a brute-force HD95."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from wavegms.core.errors import InputError
from wavegms.scoring.metrics import (
    HD95_CONVENTION,
    STD_DEFINITION,
    dice,
    hd95,
    iou,
    score,
    summarise,
)


def square(shape, r0, c0, size) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[r0 : r0 + size, c0 : c0 + size] = True
    return m


def brute_hd95(pred: np.ndarray, gt: np.ndarray) -> float:
    """medpy's HD95 written independently: 4-neighbour surfaces, all pairwise distances."""

    def surface_points(m: np.ndarray) -> np.ndarray:
        p = np.pad(m, 1, constant_values=False)
        interior = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
        return np.argwhere(m & ~interior).astype(float)

    a, b = surface_points(pred), surface_points(gt)
    d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    return float(np.percentile(np.concatenate([d.min(1), d.min(0)]), 95))


def test_overlapping_squares_hand_computed():
    # 4x4 squares offset by (1, 2): overlap 3x2 = 6, each square 16 pixels.
    pred = square((10, 10), 1, 1, 4)
    gt = square((10, 10), 2, 3, 4)
    tp, fp, fn = 6, 10, 10
    assert dice(pred, gt) == pytest.approx(2 * tp / (2 * tp + fp + fn))  # 12/32
    assert iou(pred, gt) == pytest.approx(tp / (tp + fp + fn))  # 6/26
    assert dice(pred, gt) == pytest.approx(0.375)


def test_contained_square():
    gt = square((8, 8), 0, 0, 4)  # 16
    pred = square((8, 8), 0, 0, 2)  # 4, fully inside
    assert dice(pred, gt) == pytest.approx(8 / 20)
    assert iou(pred, gt) == pytest.approx(4 / 16)


def test_identical_and_disjoint():
    m = square((12, 12), 3, 3, 5)
    assert dice(m, m) == 1.0
    assert iou(m, m) == 1.0
    assert hd95(m, m) == 0.0
    other = square((12, 12), 0, 9, 2)
    assert dice(m, other) == 0.0
    assert iou(m, other) == 0.0


def test_empty_conventions():
    empty = np.zeros((30, 40), dtype=bool)
    full = square((30, 40), 5, 5, 10)
    assert dice(empty, empty) == 1.0
    assert iou(empty, empty) == 1.0
    assert hd95(empty, empty) == 0.0
    assert dice(empty, full) == 0.0
    assert iou(full, empty) == 0.0
    assert hd95(empty, full) == pytest.approx(50.0)  # sqrt(30^2 + 40^2)
    assert hd95(full, empty) == pytest.approx(50.0)
    assert "diagonal" in HD95_CONVENTION
    assert "ddof=0" in STD_DEFINITION


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("axis", [0, 1])
def test_hd95_shifted_square_equals_shift(k, axis):
    gt = square((40, 40), 10, 10, 12)
    pred = np.roll(gt, k, axis=axis)
    assert hd95(pred, gt) == pytest.approx(k)
    assert hd95(gt, pred) == pytest.approx(k)


def test_hd95_square_touching_border():
    # Object on the image edge: edge pixels are surface (outside counts as background).
    gt = square((20, 20), 0, 0, 6)
    pred = np.roll(gt, 2, axis=1)
    assert hd95(pred, gt) == pytest.approx(brute_hd95(pred, gt))
    assert hd95(pred, gt) == pytest.approx(2.0)


@pytest.mark.parametrize("seed", range(6))
def test_hd95_matches_brute_force_on_random_blobs(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(20, 40)), int(rng.integers(20, 40)))

    def blob() -> np.ndarray:
        noise = gaussian_filter(rng.standard_normal(shape), sigma=2.5)
        return noise > np.quantile(noise, rng.uniform(0.5, 0.85))

    pred, gt = blob(), blob()
    assert pred.any() and gt.any()
    assert hd95(pred, gt) == pytest.approx(brute_hd95(pred, gt), abs=1e-9)
    # Pooling both directions makes it symmetric.
    assert hd95(pred, gt) == pytest.approx(hd95(gt, pred), abs=1e-9)


def test_score_keys_and_ranges():
    pred = square((16, 16), 2, 2, 6)
    gt = square((16, 16), 3, 3, 6)
    s = score(pred, gt)
    assert set(s) == {"dsc", "iou", "hd95"}
    assert 0 <= s["iou"] <= s["dsc"] <= 1
    assert s["hd95"] == pytest.approx(brute_hd95(pred, gt))


def test_accepts_non_bool_arrays():
    pred = square((8, 8), 1, 1, 3).astype(np.uint8) * 255
    gt = square((8, 8), 1, 1, 3).astype(float)
    assert dice(pred, gt) == 1.0


@pytest.mark.parametrize("fn", [dice, iou, hd95, score])
def test_shape_mismatch(fn):
    with pytest.raises(InputError, match="shape"):
        fn(np.zeros((4, 4), bool), np.zeros((4, 5), bool))


def test_summarise_mean_and_population_std():
    rows = [{"dsc": 1.0, "hd95": 0.0}, {"dsc": 0.5, "hd95": 4.0}, {"dsc": 0.0, "hd95": 2.0}]
    out = summarise(rows, ["dsc", "hd95"])
    assert out["dsc"][0] == pytest.approx(0.5)
    assert out["dsc"][1] == pytest.approx(math.sqrt(1 / 6))  # ddof=0, not sqrt(1/4)
    assert out["hd95"] == pytest.approx((2.0, math.sqrt(8 / 3)))
    assert summarise([{"dsc": 0.7}], ["dsc"])["dsc"] == pytest.approx((0.7, 0.0))


def test_summarise_errors():
    with pytest.raises(InputError):
        summarise([], ["dsc"])
    with pytest.raises(InputError, match="missing"):
        summarise([{"dsc": 1.0}], ["iou"])
