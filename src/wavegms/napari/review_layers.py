"""The review dock's layers: ``review: image``, ``review: mask`` (painted) and
``review: soft mask``, replaced in place as the user moves through the table."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from wavegms.napari.fields import after_build
from wavegms.napari.review_jobs import IMAGE, MASK, SOFT


def _layer(viewer, name: str, kind: str, data):
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data = data
        return layer
    return getattr(viewer, f"add_{kind}")(data, name=name)


def prepare_layers(viewer) -> Callable[[], None]:
    """While a review opens: its image and mask layers, empty, added one per turn of the
    event loop, so that the pair shown later only replaces their data. Adding a napari layer
    builds its controls and visuals on the GUI thread (0.2 s a layer here, 0.4-0.6 s on a busy
    machine): two in one turn froze the window twice as long. Returns what removes those
    still empty (the review did not open)."""
    empty = np.zeros((1, 1), np.uint8)
    added = []

    def add(name: str, kind: str) -> None:
        if name not in viewer.layers:
            added.append(_layer(viewer, name, kind, empty))

    add(IMAGE, "image")
    after_build(lambda: add(MASK, "labels"))

    def drop_empty() -> None:
        for layer in added:
            if layer in viewer.layers and layer.data is empty:
                viewer.layers.remove(layer)

    return drop_empty


def show_pair(viewer, image, mask):
    """Show an image and its mask, ready to paint; returns the labels layer."""
    if SOFT in viewer.layers:
        viewer.layers.remove(SOFT)  # another image's
    resized = IMAGE not in viewer.layers or viewer.layers[IMAGE].data.shape != image.shape
    _layer(viewer, IMAGE, "image", image)
    if resized:
        viewer.reset_view()  # another size: show it whole
    labels = _layer(viewer, MASK, "labels", mask)
    viewer.layers.selection.active = labels
    labels.mode = "paint"
    return labels


def show_soft(viewer, soft) -> None:
    layer = _layer(viewer, SOFT, "image", soft)
    layer.colormap, layer.opacity, layer.blending = "magma", 0.5, "additive"
