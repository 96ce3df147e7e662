"""The Segment widget: an image layer in, a Labels layer ``<image> mask`` out.

The model runs in a napari worker thread, which also reads the layer's (possibly lazy) data
and compares the mask layer it would replace with what was last written there; the GUI thread
only places the result. The loaded model stays on the widget (loaded and run once in the
background once the form is shown) and is reloaded only when the model or the device changes.
Errors are shown, never raised into napari.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FloatSpinBox,
)
from napari.layers import Image, Labels
from napari.utils.notifications import show_warning

from wavegms.core.errors import InputError
from wavegms.napari.fields import (
    after_build,
    device_choices,
    find_devices,
    model_choices,
    on_edit_finished,
)
from wavegms.napari.jobs import ModelSlot, SegmentResult, segment_job
from wavegms.napari.layers import LayerWatcher, data_shape, layer_source
from wavegms.napari.runner import JobForm
from wavegms.napari.settings import SegmentSettings, load_settings, save_settings

if TYPE_CHECKING:
    import napari


def mask_name(image: Image) -> str:
    return f"{image.name} mask"


def soft_name(image: Image) -> str:
    return f"{image.name} soft mask"


class SegmentWidget(JobForm):
    """Segment the chosen image layer with the chosen model."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__("Segment")
        self.viewer = viewer
        self.settings = load_settings(SegmentSettings)
        self.slot = ModelSlot()
        self._warming: threading.Thread | None = None
        self._wanted: tuple[str, str] = ("", "")  # (model, device) to warm up
        self.target: Image | None = None
        self.target_shape: tuple = ()  # the target's data shape when the job started
        self.target_mask: Labels | None = None  # the mask layer the result would replace
        self._written: dict[int, str] = {}  # id(labels layer) -> digest of what we wrote
        self._touched: set[int] = set()  # ids of mask layers painted or set since we wrote
        self._writing = False  # our own writes are no user edits
        # image layer -> the labels layer its last result went to
        self._mask_layers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.image = ComboBox(label="image", choices=self._image_choices)
        self.model = ComboBox(label="model", choices=model_choices)
        self.device = ComboBox(label="device", choices=device_choices)
        self.threshold = FloatSpinBox(
            label="threshold", min=0.0, max=1.0, step=0.05, value=self.settings.threshold
        )
        self.soft_mask = CheckBox(text="also add the soft mask", value=self.settings.soft_mask)
        self.extend([self.image, self.model, self.device, self.threshold, self.soft_mask])
        self.add_job_controls()
        self._restore_choices()
        fields = (self.model, self.device, self.threshold, self.soft_mask)
        on_edit_finished(fields, self._save_settings, self.status)
        self.watcher = LayerWatcher(viewer, self._on_layers_changed)
        self._select_selected_image()
        self.model.changed.connect(self.warm_up)
        self.device.changed.connect(self.warm_up)
        # Both import torch (in worker threads): started once the event loop runs, so that
        # building the form imports nothing heavy.
        after_build(self.warm_up)
        after_build(lambda: find_devices(self._devices_found))

    # -- choices ---------------------------------------------------------------------------
    def _image_choices(self, _widget=None) -> list[tuple[str, Image]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def _restore_choices(self) -> None:
        from wavegms.store.catalogue import default_model

        models = self.model.choices
        for name in (self.settings.model, default_model()):
            if name in models:
                self.model.value = name
                break
        if self.settings.device in self.device.choices:
            self.device.value = self.settings.device

    def _devices_found(self) -> None:
        self.device.reset_choices()
        if self.device.value == "auto" and self.settings.device in self.device.choices:
            self.device.value = self.settings.device

    def _on_layers_changed(self) -> None:
        self.reset_choices()  # layers, and the model list (new models appear too)
        if self.image.value is None:
            self._select_selected_image()

    def _select_selected_image(self) -> None:
        active = self.viewer.layers.selection.active
        if isinstance(active, Image):
            self.image.value = active
        elif self.image.choices:
            self.image.value = self.image.choices[-1]

    @property
    def loaded(self):
        """The model loaded now (by the warm-up or the last run), or None."""
        return self.slot.loaded

    def warm_up(self, _value=None) -> None:
        """Load the chosen model in the background (see ``ModelSlot.warm_up``) when the form
        opens and when the model or device changes, while the user is still looking."""
        if not self.model.value:
            return
        self._wanted = (self.model.value, self.device.value)
        if self._warming is not None and self._warming.is_alive():
            return  # the running warm-up picks up the new choice when it ends
        # Not a daemon: killed at interpreter exit inside torch's C++ code, a daemon thread
        # aborted the whole process ("terminate called without an active exception") when
        # napari was closed right after a fine-tune had selected (and so warmed) a new model.
        self._warming = threading.Thread(
            target=self._warm_up_until_current, name="wavegms-warm-up", daemon=False
        )
        self._warming.start()

    def _warm_up_until_current(self) -> None:
        while True:
            wanted = self._wanted
            self.slot.warm_up(*wanted)
            if self._wanted == wanted:
                return

    def refresh_models(self, select: str | None = None) -> None:
        """Re-list the models (e.g. after fine-tuning) and optionally select one."""
        self.model.reset_choices()
        if select is not None and select in self.model.choices:
            self.model.value = select

    def _save_settings(self, _value=None) -> None:
        self.settings = SegmentSettings(
            model=self.model.value or "",
            device=self.device.value or "auto",
            threshold=float(self.threshold.value),
            soft_mask=bool(self.soft_mask.value),
        )
        save_settings(self.settings)

    # -- running ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start segmenting the chosen image layer in a worker thread."""
        layer = self.image.value
        if not isinstance(layer, Image) or layer not in self.viewer.layers:
            raise InputError("no image layer chosen: open or add an image first")
        if not self.model.value:
            raise InputError("no model available: train or fine-tune one first")
        self.target, self.target_shape = layer, data_shape(layer)
        self.target_mask = self._mask_layer(layer)
        self._touched.discard(id(self.target_mask))
        self.start_thread(
            segment_job,
            f"segmenting {layer.name}",
            data=layer_source(layer),  # read in the worker: lazy data loads there
            rgb=bool(layer.rgb),
            model=self.model.value,
            device=self.device.value,
            threshold=float(self.threshold.value),
            slot=self.slot,
            mask_data=None if self.target_mask is None else self.target_mask.data,
            mask_digest=self._written.get(id(self.target_mask), ""),
        )

    def on_returned(self, result: SegmentResult) -> None:
        problem = self._target_changed()
        if problem:
            self.status.value = problem
            show_warning(problem)
            return
        self.show_result(self.target, result)

    def _target_changed(self) -> str:
        """Why a finished result no longer fits its image layer ('' if it does): the user may
        remove or change layers while the model runs."""
        layer = self.target
        if layer is None or layer not in self.viewer.layers:
            return "the image layer was removed while it was being segmented; no mask was added"
        if data_shape(layer) != self.target_shape:
            return (
                f"the data of {layer.name!r} changed while it was being segmented; no mask "
                "was added: press Segment again"
            )
        return ""

    # -- output layers ---------------------------------------------------------------------
    def _mask_layer(self, image: Image) -> Labels | None:
        """The layer ``image``'s result goes to: the one its last result went to, else a
        layer named ``<image> mask`` (maybe the user's own)."""
        existing = self._mask_layers.get(image)
        if existing in self.viewer.layers:
            return existing
        name = mask_name(image)
        return self.viewer.layers[name] if name in self.viewer.layers else None  # noqa: SIM401

    def _edited(self, layer, result: SegmentResult) -> bool:
        """Whether ``layer`` holds anything but what this widget last wrote: the worker
        compared its data (if it was the layer checked when the job started), and paint or
        data events since then count too. A layer we never wrote is the user's."""
        if id(layer) not in self._written or id(layer) in self._touched:
            return True
        return layer is not self.target_mask or result.mask_edited

    def show_result(self, image: Image, result: SegmentResult) -> None:
        """Write (or update) ``<image> mask`` and optionally ``<image> soft mask``.

        A mask layer the user has painted on since it was written is never replaced: the new
        result goes to a new layer beside it, so corrections are not lost.
        """
        geometry = {"scale": image.scale, "translate": image.translate}
        labels, soft = result.labels, result.soft
        existing = self._mask_layer(image)
        edited = existing is not None and self._edited(existing, result)
        kept = ""
        self._writing = True
        try:
            if isinstance(existing, Labels) and existing.data.shape == labels.shape and not edited:
                existing.data = labels
                existing.scale, existing.translate = geometry["scale"], geometry["translate"]
                layer = existing
            else:
                if existing is not None and not edited:
                    self.viewer.layers.remove(existing)
                elif existing is not None:
                    kept = f"; your edited {existing.name!r} was kept"
                layer = self.viewer.add_labels(labels, name=mask_name(image), **geometry)
                layer.events.paint.connect(self._on_mask_edited)
                layer.events.data.connect(self._on_mask_edited)
        finally:
            self._writing = False
        self._written[id(layer)] = result.digest
        self._touched.discard(id(layer))
        self._mask_layers[image] = layer
        if self.soft_mask.value:
            self._show_soft(image, soft, geometry)
        area = int(labels.sum())
        self.status.value = f"done: {layer.name} ({area} foreground pixels){kept}"

    def _show_soft(self, image: Image, soft: np.ndarray, geometry: dict) -> None:
        name = soft_name(image)
        if name in self.viewer.layers and self.viewer.layers[name].data.shape == soft.shape:
            self.viewer.layers[name].data = soft
            return
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        self.viewer.add_image(
            soft, name=name, colormap="magma", contrast_limits=(0, 1),
            blending="additive", opacity=0.5, **geometry,
        )  # fmt: skip

    def _on_mask_edited(self, event) -> None:
        if not self._writing:
            self._touched.add(id(event.source))
