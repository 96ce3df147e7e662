"""The Segment widget: an image layer in, a Labels layer ``<image> mask`` out.

The model runs in a napari worker thread, which also reads the layer's (possibly lazy) data
and compares the mask layer it would replace with what was last written there; the GUI thread
only places the result (``mask_layers``). The loaded model stays on the widget (loaded and run
once in the background once the form is built) and is reloaded only when the model, the
device or the precision changes. Exact fp32 is the default; int8 (faster, not exact) runs
only when the user picks it, and every mask layer's metadata and the status line say which
precision and backend made it. Errors are shown, never raised into napari.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FloatSpinBox,
)
from napari.layers import Image
from napari.utils.notifications import show_warning

from wavegms.core.errors import InputError
from wavegms.core.progress import Progress
from wavegms.napari.dock_lifetime import DockLifetime
from wavegms.napari.fields import (
    after_build,
    complete_device_list,
    device_choices,
    model_choices,
    on_edit_finished,
)
from wavegms.napari.jobs import ModelSlot, SegmentResult, segment_job
from wavegms.napari.layers import LayerWatcher, data_shape, layer_source
from wavegms.napari.mask_layers import MaskLayers
from wavegms.napari.runner import JobForm
from wavegms.napari.settings import SegmentChoices, load_settings, save_settings

if TYPE_CHECKING:
    import napari

#: The precision field's choices: exact first (the default), int8 only by the user's choice.
PRECISION_CHOICES = [("exact (fp32)", "fp32"), ("int8: faster, not exact", "int8")]


def made_by(result: SegmentResult) -> str:
    """``precision int8 on int8 (not exact)``: the precision and backend that made a mask."""
    made = result.provenance
    note = " (not exact)" if made.get("precision") == "int8" else ""
    if result.while_building:
        note = " (the exact eager model while the fast graph is prepared: the same mask)"
    return f"precision {made.get('precision', '?')} on {made.get('backend', '?')}{note}"


class SegmentWidget(JobForm):
    """Segment the chosen image layer with the chosen model."""

    dock_title = "Segment"
    grows_vertically = False  # a short form: the docks below it get the height
    drop_on_cancel = True  # Cancel frees the form at once; a late result is dropped unseen
    dropped_message = "cancelled: no mask was added"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__("Segment")
        self.viewer = viewer
        self.settings = load_settings(SegmentChoices)
        self.slot = ModelSlot()
        self.lifetime = DockLifetime(self.native, self.slot.close)  # frees the model with the dock
        self._warming: threading.Thread | None = None
        self._wanted: tuple[str, str, str] = ("", "", "")  # (model, device, precision)
        self.target: Image | None = None
        self.target_shape: tuple = ()  # the target's data shape when the job started
        self.masks = MaskLayers(viewer)
        self.image = ComboBox(label="image", choices=self._image_choices)
        self.model = ComboBox(label="model", choices=model_choices)
        self.device = ComboBox(label="device", choices=device_choices)
        self.threshold = FloatSpinBox(
            label="threshold", min=0.0, max=1.0, step=0.05, value=self.settings.threshold
        )
        self.soft_mask = CheckBox(text="also add the soft mask", value=self.settings.soft_mask)
        self.precision = ComboBox(
            label="precision", choices=PRECISION_CHOICES, value=self.settings.precision
        )
        self.precision.tooltip = "exact fp32: the model's own answer; int8: faster, not exact"
        fields = (self.model, self.device, self.threshold, self.soft_mask, self.precision)
        self.extend([self.image, *fields])
        self.add_job_controls()
        self._restore_choices()
        on_edit_finished(fields, self._save_settings, self.status)
        self.watcher = LayerWatcher(viewer, self._on_layers_changed)
        self._select_selected_image()
        self.model.changed.connect(self.warm_up)
        self.device.changed.connect(self.warm_up)
        self.precision.changed.connect(self.warm_up)
        # Both import torch (in worker threads): started once the event loop runs, so that
        # building the form imports nothing heavy.
        after_build(self.warm_up)
        complete_device_list(self.device, self.settings.device)
        self.finish_layout()

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
        self._wanted = (self.model.value, self.device.value, self.precision.value)
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
        self.settings = SegmentChoices(
            model=self.model.value or "",
            device=self.device.value or "auto",
            threshold=float(self.threshold.value),
            soft_mask=bool(self.soft_mask.value),
            precision=self.precision.value,
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
        check = self.masks.to_check(layer)  # before the empty layer below exists
        # Added before the worker starts: while the worker prepares the image it holds the GIL
        # in stretches, and a layer added beside it took 3-4 times its CPU time (under load).
        self.masks.prepare(layer, self.target_shape[:-1] if layer.rgb else self.target_shape)
        try:
            self.start_thread(
                segment_job,
                f"segmenting {layer.name}",
                data=layer_source(layer),  # read in the worker: lazy data loads there
                rgb=bool(layer.rgb),
                model=self.model.value,
                device=self.device.value,
                threshold=float(self.threshold.value),
                slot=self.slot,
                precision=self.precision.value,
                **check,
            )
        except Exception:
            self.masks.drop_placeholder()  # no job: no result will fill it
            raise
        # The first stage said and drawn at once, before any worker report (the first click
        # may wait seconds for the model to load).
        self._report(Progress("load", 0, 1, f"loading the model {self.model.value}…"))
        for row in (self.status, self.progress_bar):
            row.native.repaint()

    def on_finished(self) -> None:
        self.masks.drop_placeholder()  # no result filled it (cancelled, failed, dropped)

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
    def show_result(self, image: Image, result: SegmentResult) -> None:
        """Write (or update) ``<image> mask`` and optionally ``<image> soft mask``; a mask
        layer the user has edited is kept, and the result goes to a new layer beside it."""
        layer, kept = self.masks.write(image, result)
        layer.metadata["wavegms"] = dict(result.provenance)  # what made this mask
        if self.soft_mask.value:
            self.masks.write_soft(image, result.soft)
        self.status.value = (
            f"done: {layer.name} ({result.area} foreground pixels; {made_by(result)}){kept}"
        )
