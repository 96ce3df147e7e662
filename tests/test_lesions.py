"""lesions.csv measurements (wavegms.scoring.lesions) against figures computed by hand."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest

from wavegms.core.errors import InputError
from wavegms.scoring.lesions import LESION_COLUMNS, lesions_csv, measure_lesions


def rectangle(height: int, width: int, shape=(100, 120), top=10, left=20) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[top : top + height, left : left + width] = True
    return mask


def disk(radius: int) -> np.ndarray:
    size = 2 * radius + 11
    rows, cols = np.mgrid[:size, :size] - size // 2
    return rows**2 + cols**2 <= radius**2


def test_a_rectangle_with_anisotropic_spacing():
    # 40 x 80 pixels of 0.5 mm (rows) x 0.2 mm (columns): a 20 mm x 16 mm rectangle
    (row,) = measure_lesions(rectangle(40, 80), spacing=(0.5, 0.2), name="r")
    assert row["name"] == "r" and row["label"] == 1 and row["lesion"] == 1
    assert row["area_px"] == 3200 and row["area_mm2"] == pytest.approx(320.0)
    diagonal = math.hypot(20.0, 16.0)
    assert row["longest_diameter_mm"] == pytest.approx(diagonal)
    # the rectangle's extent across its diagonal: twice its area over the diagonal
    assert row["perpendicular_width_mm"] == pytest.approx(2 * 320.0 / diagonal)
    assert row["perimeter_mm"] == pytest.approx(2 * (20 + 16), rel=0.01)
    assert row["longest_diameter_px"] == pytest.approx(math.hypot(40, 80))
    assert row["perimeter_px"] == pytest.approx(240, rel=0.01)
    assert (row["centroid_row"], row["centroid_col"]) == (pytest.approx(29.5), pytest.approx(59.5))
    assert (row["bbox_row0"], row["bbox_col0"], row["bbox_row1"], row["bbox_col1"]) == (
        10, 20, 50, 100,
    )  # fmt: skip
    assert (row["row_spacing_mm"], row["col_spacing_mm"]) == (0.5, 0.2)


def test_a_disk_measures_its_diameter_area_and_circumference():
    radius, spacing = 40, 0.1  # a 8.1 mm lesion (81 pixels across)
    (row,) = measure_lesions(disk(radius), spacing=(spacing, spacing))
    across = (2 * radius + 1) * spacing
    # the pixels whose centres lie within the radius: pi r^2 of them
    assert row["area_mm2"] == pytest.approx(math.pi * (radius * spacing) ** 2, rel=0.01)
    assert across <= row["longest_diameter_mm"] <= across * 1.01
    assert row["perpendicular_width_mm"] == pytest.approx(across, rel=0.01)
    assert row["perimeter_mm"] == pytest.approx(math.pi * across, rel=0.015)


def test_anisotropic_pixels_make_a_disk_of_pixels_an_ellipse():
    # a pixel disk of radius 30 with pixels twice as tall as wide: 12.2 mm tall, 6.1 mm wide
    (row,) = measure_lesions(disk(30), spacing=(0.2, 0.1))
    assert row["longest_diameter_mm"] == pytest.approx(61 * 0.2, rel=0.01)
    assert row["perpendicular_width_mm"] == pytest.approx(61 * 0.1, rel=0.01)
    assert row["area_mm2"] == pytest.approx(row["area_px"] * 0.02)
    a, b = 6.1, 3.05  # Ramanujan's ellipse circumference
    ellipse = math.pi * (3 * (a + b) - math.sqrt((3 * a + b) * (a + 3 * b)))
    assert row["perimeter_mm"] == pytest.approx(ellipse, rel=0.015)


def test_one_row_per_connected_lesion_of_each_label_without_mm_when_spacing_is_unknown():
    labels = np.zeros((60, 60), np.uint16)
    labels[5:10, 5:10] = 1
    labels[10:12, 10:12] = 1  # touches the first one at a corner: the same lesion
    labels[30:40, 5:10] = 1
    labels[20:25, 40:50] = 3
    rows = measure_lesions(labels)
    assert [(r["label"], r["lesion"], r["area_px"]) for r in rows] == [
        (1, 1, 29), (1, 2, 50), (3, 1, 50),
    ]  # fmt: skip
    assert all(r[key] is None for r in rows for key in LESION_COLUMNS if key.endswith("_mm")
               or key.endswith("_mm2"))  # fmt: skip
    assert measure_lesions(np.zeros((5, 5), bool)) == []
    (one,) = measure_lesions(np.pad(np.ones((1, 1), bool), 2), spacing=(0.3, 0.4))
    assert one["longest_diameter_mm"] == pytest.approx(0.5)  # the pixel's diagonal
    assert one["area_mm2"] == pytest.approx(0.12)


def test_the_csv_has_every_column_and_empty_cells_for_unknown_figures():
    text = lesions_csv(measure_lesions(rectangle(4, 6), name="a") +
                       measure_lesions(rectangle(4, 6), spacing=(1.0, 2.0), name="b"))  # fmt: skip
    table = list(csv.DictReader(io.StringIO(text)))
    assert tuple(table[0]) == LESION_COLUMNS
    assert table[0]["area_mm2"] == "" and table[0]["area_px"] == "24"
    assert float(table[1]["area_mm2"]) == 48.0 and table[1]["name"] == "b"


@pytest.mark.parametrize(
    ("labels", "spacing", "why"),
    [
        (np.zeros((3, 4, 5), np.uint8), None, "2D mask"),
        (np.zeros((4, 5), np.float32), None, "2D mask"),
        (np.zeros((4, 5), np.uint8), (0.1, 0.0), "positive"),
        (np.zeros((4, 5), np.uint8), (0.1, float("nan")), "positive"),
        (np.zeros((4, 5), np.uint8), (0.1,), "two numbers"),
    ],
)
def test_bad_input_is_a_one_line_error(labels, spacing, why):
    with pytest.raises(InputError, match=why):
        measure_lesions(labels, spacing)
