"""Where the Segment widget's results go: ``<image> mask`` (Labels) and ``<image> soft mask``.

A mask layer the user has edited is never replaced: the new result goes to a new layer
beside it, so corrections are not lost. Whether a layer was edited is known without scanning
it on the GUI thread: the Segment worker compares the layer's data with the digest of what was
written there (``jobs.segment_job``), and paint or data events after that count as edits too.
"""

from __future__ import annotations

import weakref

import numpy as np
from napari.layers import Image, Labels

from wavegms.napari.jobs import SegmentResult
from wavegms.napari.layer_turns import add_layer


def _key(layer) -> str | None:
    """What identifies a layer for as long as it exists, and never another one after it."""
    return None if layer is None else layer.unique_id


def mask_name(image: Image) -> str:
    return f"{image.name} mask"


def soft_name(image: Image) -> str:
    return f"{image.name} soft mask"


class MaskLayers:
    """The mask layers one Segment widget writes, and what it wrote into each."""

    def __init__(self, viewer) -> None:
        self.viewer = viewer
        # Keyed by the layer's own ``unique_id``: a Python id() is reused once a layer is
        # deleted, so a new layer could inherit a removed one's record.
        self._written: dict[str, str] = {}  # layer unique_id -> digest of what we wrote
        self._touched: set[str] = set()  # unique ids of our layers painted or set since
        self._writing = False  # our own writes are no user edits
        self._checked: Labels | None = None  # the layer the running job compares
        self._placeholder: Labels | None = None  # added empty while the model runs
        # image layer -> the labels layer its last result went to
        self._last: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def layer_for(self, image: Image) -> Labels | None:
        """The layer ``image``'s result goes to: the one its last result went to, else a
        layer named ``<image> mask`` (maybe the user's own)."""
        existing = self._last.get(image)
        if existing in self.viewer.layers:
            return existing
        name = mask_name(image)
        return self.viewer.layers[name] if name in self.viewer.layers else None  # noqa: SIM401

    def to_check(self, image: Image) -> dict:
        """For a job about to segment ``image``: the data of the layer its result would
        replace and the digest of what we wrote there, for the worker to compare."""
        self._checked = layer = self.layer_for(image)
        self._touched.discard(_key(layer))  # edits until now show in the worker's comparison
        return {
            "mask_data": None if layer is None else layer.data,
            "mask_digest": self._written.get(_key(layer), ""),
        }

    def prepare(self, image: Image, shape: tuple) -> None:
        """Before the model runs: an empty ``<image> mask`` layer of the result's ``shape`` when
        ``image`` has no mask layer yet, so that the result only replaces its data. It is
        removed again (:meth:`drop_placeholder`) if no result comes."""
        if self.layer_for(image) is not None:
            return
        self._writing = True
        try:
            layer = self._add(image, np.zeros(shape, np.uint8))
        finally:
            self._writing = False
        self._placeholder = self._last[image] = layer

    def drop_placeholder(self) -> None:
        """Remove the empty layer :meth:`prepare` added if no result filled it (cancelled,
        failed), unless the user has painted in it meanwhile."""
        layer, self._placeholder = self._placeholder, None
        if layer is not None and _key(layer) not in self._touched and layer in self.viewer.layers:
            self.viewer.layers.remove(layer)

    def _add(self, image: Image, labels: np.ndarray) -> Labels:
        layer = Labels(labels, name=mask_name(image), scale=image.scale, translate=image.translate)
        add_layer(self.viewer, layer)  # in short turns: see layer_turns
        layer.events.paint.connect(self._on_edit)
        layer.events.data.connect(self._on_edit)
        return layer

    def _edited(self, layer, result: SegmentResult) -> bool:
        """Whether ``layer`` holds anything but what we last wrote. A layer we never wrote
        is the user's."""
        if layer is self._placeholder:  # added empty for this result
            return _key(layer) in self._touched
        if _key(layer) not in self._written or _key(layer) in self._touched:
            return True
        return layer is not self._checked or result.mask_edited

    def write(self, image: Image, result: SegmentResult) -> tuple[Labels, str]:
        """Put ``result`` into ``image``'s mask layer (or a new one, if that was edited);
        returns the layer and a note for the user ('' or what was kept)."""
        labels = result.labels
        existing = self.layer_for(image)
        edited = existing is not None and self._edited(existing, result)
        kept = ""
        self._writing = True
        try:
            if isinstance(existing, Labels) and existing.data.shape == labels.shape and not edited:
                existing.data = labels
                existing.scale, existing.translate = image.scale, image.translate
                layer = existing
            else:
                if existing is not None and not edited:
                    self.viewer.layers.remove(existing)
                elif existing is not None:
                    kept = f"; your edited {existing.name!r} was kept"
                layer = self._add(image, labels)
        finally:
            self._writing = False
        self._placeholder = None  # filled, or the user's (painted in): kept either way
        self._written[_key(layer)] = result.digest
        self._touched.discard(_key(layer))
        self._last[image] = layer
        return layer, kept

    def write_soft(self, image: Image, soft: np.ndarray) -> None:
        """Put the soft mask into ``<image> soft mask`` (never edited by hand: replaced)."""
        name = soft_name(image)
        layers = self.viewer.layers
        if name in layers and layers[name].data.shape == soft.shape:
            layers[name].data = soft
            return
        if name in layers:
            layers.remove(name)
        layer = Image(
            soft, name=name, colormap="magma", contrast_limits=(0, 1), blending="additive",
            opacity=0.5, scale=image.scale, translate=image.translate,
        )  # fmt: skip
        add_layer(self.viewer, layer)

    def _on_edit(self, event) -> None:
        if not self._writing:
            self._touched.add(_key(event.source))
