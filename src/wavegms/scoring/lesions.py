"""Lesion measurements: one row per connected lesion of a mask or labels image, in pixels and,
when the pixel spacing is known, in millimetres.

Conventions (what a report's caliper figure means):

* a lesion is one 8-connected part of one label (diagonal neighbours belong together);
* a pixel is a ``row_mm x col_mm`` rectangle, so a lesion ``n`` pixels across measures
  ``n * spacing``: lengths run over the corners of the lesion's pixels;
* ``longest_diameter``: the maximum Feret diameter, the greatest distance between two of those
  corners; ``perpendicular_width``: the lesion's extent across that diameter (its caliper width
  at right angles to it), as reported beside the longest diameter (BI-RADS, polyp size);
* ``perimeter``: the length of the lesion's outline at the half-way level between its pixels
  and the background (marching squares, holes included), straightened within
  :data:`OUTLINE_TOLERANCE` pixels so that it follows a round lesion's edge rather than the
  staircase of its pixels (a pixelised disk's outline is then within about 1% of 2πr for
  r >= 30 px; unstraightened it is 5-6% longer);
* area, centroid and bounding box come from scikit-image ``regionprops`` (area in mm² with its
  ``spacing``); centroid and bounding box are pixel positions (row, column; the box
  half-open: ``row0 <= row < row1``).

scikit-image's own ``feret_diameter_max`` runs through pixel centres on some sides and its
``perimeter`` takes no anisotropic spacing, hence the two measurements here.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence

import numpy as np

from wavegms.core.errors import InputError

LESIONS_CSV = "lesions.csv"

LESION_COLUMNS = (
    "name", "label", "lesion", "area_px", "area_mm2",
    "longest_diameter_px", "longest_diameter_mm", "perpendicular_width_px",
    "perpendicular_width_mm", "perimeter_px", "perimeter_mm",
    "centroid_row", "centroid_col", "bbox_row0", "bbox_col0", "bbox_row1", "bbox_col1",
    "row_spacing_mm", "col_spacing_mm",
)  # fmt: skip

Spacing = tuple[float, float]

#: how far (pixels) the measured outline may depart from the pixel staircase's contour
OUTLINE_TOLERANCE = 0.75


def check_spacing(spacing: Sequence[float] | None) -> Spacing | None:
    """``(row_mm, col_mm)`` as two positive finite floats, None for unknown; else InputError."""
    if spacing is None:
        return None
    try:
        row, col = (float(v) for v in spacing)
    except (TypeError, ValueError):
        raise InputError(
            f"a pixel spacing is two numbers (row, column) in mm, not {spacing!r}"
        ) from None
    if not all(math.isfinite(v) and v > 0 for v in (row, col)):
        raise InputError(f"a pixel spacing must be positive and finite, not {spacing!r}")
    return row, col


def _corners(part: np.ndarray, spacing: Spacing) -> np.ndarray:
    """The convex hull's vertices of a lesion's pixel squares, in (row, col) physical units."""
    rows, cols = np.nonzero(part)
    pts = np.concatenate(
        [np.stack([rows + dr, cols + dc], axis=1) for dr in (0, 1) for dc in (0, 1)]
    ).astype(np.float64)
    pts = np.unique(pts, axis=0) * np.asarray(spacing)
    if len(pts) <= 4:  # one pixel: its four corners are the hull
        return pts
    from scipy.spatial import ConvexHull

    return pts[ConvexHull(pts).vertices]


def feret(part: np.ndarray, spacing: Spacing) -> tuple[float, float]:
    """(longest diameter, extent perpendicular to it) of one lesion, in the units of
    ``spacing`` (see the module docstring)."""
    hull = _corners(part, spacing)
    gaps = hull[:, None, :] - hull[None, :, :]
    lengths = np.hypot(gaps[..., 0], gaps[..., 1])
    i, j = np.unravel_index(np.argmax(lengths), lengths.shape)
    longest = float(lengths[i, j])
    normal = np.array([-gaps[i, j, 1], gaps[i, j, 0]]) / longest
    across = hull @ normal
    return longest, float(across.max() - across.min())


def perimeter(part: np.ndarray, spacing: Spacing) -> float:
    """The length of a lesion's outline (see the module docstring), holes included."""
    from skimage.measure import approximate_polygon, find_contours

    padded = np.pad(part.astype(np.float32), 1)
    total = 0.0
    for contour in find_contours(padded, 0.5):
        contour = approximate_polygon(contour, OUTLINE_TOLERANCE)
        steps = np.diff(contour, axis=0) * np.asarray(spacing)
        total += float(np.hypot(steps[:, 0], steps[:, 1]).sum())
    return total


def _lesion_row(name: str, label: int, index: int, region, spacing: Spacing | None) -> dict:
    part = region.image  # the lesion inside its bounding box
    row0, col0, row1, col1 = (int(v) for v in region.bbox)
    longest, width = feret(part, (1.0, 1.0))
    row = {
        "name": name, "label": label, "lesion": index, "area_px": int(region.area),
        "longest_diameter_px": longest, "perpendicular_width_px": width,
        "perimeter_px": perimeter(part, (1.0, 1.0)),
        "centroid_row": float(region.centroid[0]), "centroid_col": float(region.centroid[1]),
        "bbox_row0": row0, "bbox_col0": col0, "bbox_row1": row1, "bbox_col1": col1,
        "area_mm2": None, "longest_diameter_mm": None, "perpendicular_width_mm": None,
        "perimeter_mm": None, "row_spacing_mm": None, "col_spacing_mm": None,
    }  # fmt: skip
    if spacing is not None:
        longest_mm, width_mm = feret(part, spacing)
        row.update(
            area_mm2=float(region.area) * spacing[0] * spacing[1],
            longest_diameter_mm=longest_mm, perpendicular_width_mm=width_mm,
            perimeter_mm=perimeter(part, spacing),
            row_spacing_mm=spacing[0], col_spacing_mm=spacing[1],
        )  # fmt: skip
    return row


def measure_lesions(
    labels: np.ndarray, spacing: Sequence[float] | None = None, name: str = ""
) -> list[dict]:
    """One row (:data:`LESION_COLUMNS`) per connected lesion of each label of a 2D mask
    (bool: label 1) or labels image, by label, then from top to bottom; mm columns empty
    when ``spacing`` (mm per pixel, row and column) is None."""
    from scipy import ndimage
    from skimage.measure import regionprops

    labels = np.asarray(labels)
    if labels.ndim != 2 or not (labels.dtype == bool or np.issubdtype(labels.dtype, np.integer)):
        raise InputError(
            f"lesions are measured on a 2D mask or labels image, not {labels.dtype} {labels.shape}"
        )
    spacing = check_spacing(spacing)
    rows: list[dict] = []
    for label in np.unique(labels[labels > 0]) if labels.dtype != bool else [1]:
        parts, _ = ndimage.label(labels == label, structure=np.ones((3, 3), bool))
        for index, region in enumerate(regionprops(parts), start=1):
            rows.append(_lesion_row(name, int(label), index, region, spacing))
    return rows


def lesions_csv(rows: Sequence[dict]) -> str:
    """The text of ``lesions.csv``: a header of :data:`LESION_COLUMNS`, one line per row,
    numbers to 4 decimals, empty cells where a measurement is not known."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(LESION_COLUMNS)
    for row in rows:
        cells = [row.get(key) for key in LESION_COLUMNS]
        writer.writerow(
            "" if v is None else f"{v:.4f}" if isinstance(v, float) else v for v in cells
        )
    return out.getvalue()
