"""Reading the viewer's layers without loading them on the GUI thread, and following changes.

Layer data may be lazy (dask, zarr): the forms take its shape and hand the array object to a
worker, which reads it with ``np.asarray``; only a single shown plane is ever read here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def layer_source(layer):
    """A layer's full-resolution data as it is stored (possibly lazy: not read here)."""
    return layer.data[0] if layer.multiscale else layer.data


def data_shape(layer) -> tuple:
    """The shape of a layer's full-resolution data, without loading lazy arrays."""
    return tuple(layer_source(layer).shape)


def current_plane(layer, viewer) -> np.ndarray:
    """The 2D plane (HxW, or HxWxC for RGB) of ``layer`` that the viewer shows now; of a lazy
    stack, only that plane is read."""
    data = layer_source(layer)
    spatial = 3 if getattr(layer, "rgb", False) else 2
    lead = len(data.shape) - spatial
    if lead <= 0:
        return np.asarray(data)
    point = layer.world_to_data(viewer.dims.point)
    index = tuple(
        int(np.clip(round(float(c)), 0, n - 1))
        for c, n in zip(point[:lead], data.shape[:lead], strict=True)
    )
    return np.asarray(data[index])


class LayerWatcher:
    """Calls ``callback()`` whenever the viewer's layers are added, removed, moved or renamed."""

    def __init__(self, viewer, callback: Callable[[], None]) -> None:
        self.callback = callback
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self._changed)
        viewer.layers.events.moved.connect(self._changed)
        for layer in viewer.layers:
            layer.events.name.connect(self._changed)

    def _changed(self, event=None) -> None:
        if event is not None and getattr(event, "type", "") == "inserted":
            event.value.events.name.connect(self._changed)
        self.callback()
