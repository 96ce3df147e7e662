"""The Qt-free work of the box dock (:mod:`wavegms.napari.boxes`): napari rectangles to
pixel boxes (on the GUI thread: a few vertices), and the segmentation inside them (in the
worker: the layer's data is read there)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np

from wavegms.core.errors import InputError
from wavegms.core.progress import CancelToken, ProgressCallback, check_cancel, report
from wavegms.inference.boxes import Box, segment_boxes
from wavegms.store.catalogue import NO_WHOLE


def rectangles_to_boxes(
    vertices: Sequence[np.ndarray], to_image, image_ndim: int
) -> dict[tuple[int, ...], list[Box]]:
    """Rectangles (each a shape's vertices in the Shapes layer's data coordinates) -> pixel
    boxes of the image, keyed by the plane they lie on (``()`` for a 2D image).

    ``to_image`` maps one shape-data point to image-data coordinates (through world
    coordinates, so that layers of different scale line up). napari puts pixel ``i``'s centre
    at ``i``, so a rectangle from ``-0.5`` to ``9.5`` covers pixels 0-9: the box's edges are
    the vertices + 0.5."""
    planes: dict[tuple[int, ...], list[Box]] = defaultdict(list)
    for shape in vertices:
        points = np.array([to_image(np.asarray(v, float)) for v in shape], float)
        lead = points[:, : image_ndim - 2]
        plane = tuple(round(float(c)) for c in lead.mean(axis=0)) if lead.size else ()
        rows, cols = points[:, -2], points[:, -1]
        # rounded: a scale of 0.2 would otherwise put an edge at 9.9999999, one pixel out
        x0, x1 = (round(float(v) + 0.5, 6) for v in (cols.min(), cols.max()))
        y0, y1 = (round(float(v) + 0.5, 6) for v in (rows.min(), rows.max()))
        if x1 - x0 < 1 or y1 - y0 < 1:
            raise InputError("a rectangle is less than one pixel wide or high; draw it larger")
        planes[plane].append(Box(x0, y0, x1, y1))
    if not planes:
        raise InputError("the shapes layer holds no rectangle: draw one around the lesion")
    return dict(planes)


def box_job(
    data,
    rgb: bool,
    boxes: dict[tuple[int, ...], list[Box]],
    model: str,
    device: str,
    threshold: float,
    margin: float,
    slot,
    whole: str = NO_WHOLE,
    whole_slot=None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Labels shaped like the layer (without its colour axis): in each plane that has boxes,
    box ``k`` of the rectangles as label ``k`` (numbered over the whole layer). ``whole``:
    the model (held in ``whole_slot``) whose soft mask of each plane every crop's is
    averaged with, or :data:`~wavegms.store.catalogue.NO_WHOLE`."""
    array = np.asarray(data)
    shape = array.shape[:-1] if rgb else array.shape
    labels = np.zeros(shape, np.uint16)
    first = 1
    paired = bool(whole) and whole != NO_WHOLE
    partner = whole_slot.hold(whole, device, progress) if paired else nullcontext()
    with slot.hold(model, device, progress) as segmenter, partner as whole_segmenter:
        for done, (plane, plane_boxes) in enumerate(sorted(boxes.items())):
            check_cancel(cancel)
            if any(not 0 <= p < n for p, n in zip(plane, shape, strict=False)):
                raise InputError(f"a rectangle lies on plane {plane}, outside the image")
            result = segment_boxes(
                segmenter, array[plane], plane_boxes, margin=margin, threshold=threshold,
                whole=whole_segmenter,
            )  # fmt: skip
            found = result.labels > 0
            labels[plane][found] = result.labels[found] + (first - 1)
            first += len(plane_boxes)
            report(progress, "segment", done + 1, len(boxes))
    return labels
