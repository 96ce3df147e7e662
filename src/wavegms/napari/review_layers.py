"""The review dock's layers: ``review: image``, ``review: mask`` (painted) and
``review: soft mask``, replaced in place as the user moves through the table."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from napari.layers import Image, Labels

from wavegms.napari.layer_turns import add_layer
from wavegms.napari.review_jobs import IMAGE, MASK, SOFT


def _layer(viewer, name: str, kind: type, data):
    """The layer ``name`` showing ``data``: its data replaced, or a new layer added in short
    turns of the event loop (``layer_turns``)."""
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data = data
        return layer
    return add_layer(viewer, kind(data, name=name))


def prepare_layers(viewer) -> Callable[[], None]:
    """While a review opens: its image and mask layers, empty, added one after the other in
    short turns of the event loop (``layer_turns``), so that the pair shown later only
    replaces their data. Adding a napari layer builds its controls and visuals on the GUI
    thread; two in one turn froze the window twice as long. Returns what removes those
    still empty (the review did not open) and adds none after it."""
    empty = np.zeros((1, 1), np.uint8)
    added, dropped = [], []

    def add(name: str, kind: type, then: Callable[[], None] | None = None) -> None:
        if dropped:
            return
        if name in viewer.layers:  # kept from before, or the pair came first
            if then is not None:
                then()
            return
        added.append(add_layer(viewer, kind(empty, name=name), then))

    add(IMAGE, Image, lambda: add(MASK, Labels))

    def drop_empty() -> None:
        dropped.append(True)
        for layer in added:
            if layer in viewer.layers and layer.data is empty:
                viewer.layers.remove(layer)

    return drop_empty


def show_pair(viewer, image, mask):
    """Show an image and its mask, ready to paint; returns the labels layer."""
    if SOFT in viewer.layers:
        viewer.layers.remove(SOFT)  # another image's
    resized = IMAGE not in viewer.layers or viewer.layers[IMAGE].data.shape != image.shape
    _layer(viewer, IMAGE, Image, image)
    if resized:
        viewer.reset_view()  # another size: show it whole
    labels = _layer(viewer, MASK, Labels, mask)
    viewer.layers.selection.active = labels
    labels.mode = "paint"
    return labels


def show_soft(viewer, soft) -> None:
    layer = _layer(viewer, SOFT, Image, soft)
    layer.colormap, layer.opacity, layer.blending = "magma", 0.5, "additive"
