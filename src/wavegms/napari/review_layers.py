"""The review dock's layers: ``review: image``, ``review: mask`` (painted) and
``review: soft mask``, replaced in place as the user moves through the table."""

from __future__ import annotations

from wavegms.napari.review_jobs import IMAGE, MASK, SOFT


def _layer(viewer, name: str, kind: str, data):
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data = data
        return layer
    return getattr(viewer, f"add_{kind}")(data, name=name)


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
