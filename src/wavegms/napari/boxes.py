"""The "Segment in boxes" dock: rectangles drawn on a Shapes layer around lesions, the model
run inside each, and a Labels layer ``<image> boxes`` with box ``k`` as label ``k``, at the
image's scale (a DICOM or NIfTI image's mm spacing travels on). As on the command line,
busi-box segments the crops and busi the whole image by default ("whole image": the model
each crop's soft mask is averaged with, or none; any other model's crops run alone unless a
partner is chosen), the partner held in a slot of its own.

The rectangles are read on the GUI thread (a few vertices, mapped through world coordinates
so that layers of another scale still line up); the image is read and segmented in a worker
thread of the plugin's one job runner (:class:`~wavegms.napari.runner.JobForm`); the GUI
thread only adds the finished layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import ComboBox, FloatSpinBox
from napari.layers import Image, Shapes

from wavegms.core.errors import InputError
from wavegms.inference.boxes import DEFAULT_MARGIN
from wavegms.napari.box_jobs import box_job, rectangles_to_boxes
from wavegms.napari.dock_lifetime import DockLifetime
from wavegms.napari.fields import complete_device_list, device_choices, model_choices
from wavegms.napari.jobs import ModelSlot
from wavegms.napari.layers import LayerWatcher, data_shape, layer_source
from wavegms.napari.runner import JobForm
from wavegms.store.catalogue import NO_WHOLE, box_models

if TYPE_CHECKING:
    import napari


def whole_choices(_widget=None) -> list[str]:
    """No whole-image model, or any model."""
    return [NO_WHOLE, *model_choices()]


def boxes_name(image: Image) -> str:
    return f"{image.name} boxes"


class BoxSegmentWidget(JobForm):
    """Segment the chosen image inside the rectangles of the chosen Shapes layer."""

    dock_title = "Segment in boxes"
    grows_vertically = False

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__("Segment in boxes")
        self.viewer = viewer
        self.slot = ModelSlot()
        self.whole_slot = ModelSlot()  # the whole-image model, loaded beside the crops' one
        # frees both models with the dock
        self.lifetime = DockLifetime(self.native, self.slot.close, self.whole_slot.close)
        self.target: Image | None = None
        self.target_shape: tuple = ()
        self.image = ComboBox(label="image", choices=self._layers(Image))
        self.shapes = ComboBox(label="boxes", choices=self._layers(Shapes))
        self.model = ComboBox(label="model", choices=model_choices)
        self.whole = ComboBox(
            label="whole image", choices=whole_choices,
            tooltip="the model whose whole-image soft mask each crop's is averaged with "
            f"({NO_WHOLE}: the crops alone)",
        )  # fmt: skip
        self.device = ComboBox(label="device", choices=device_choices)
        self.threshold = FloatSpinBox(label="threshold", min=0.0, max=1.0, step=0.05, value=0.5)
        self.margin = FloatSpinBox(
            label="margin", min=0.0, max=10.0, step=0.05, value=DEFAULT_MARGIN,
            tooltip="context around each box, as a share of its size on each side",
        )  # fmt: skip
        self.extend([self.image, self.shapes, self.model, self.whole, self.device,
                     self.threshold, self.margin])  # fmt: skip
        self.add_job_controls()
        self.watcher = LayerWatcher(viewer, self.reset_choices)
        complete_device_list(self.device, "auto")  # listed by a worker (torch)
        if (crop_aware := box_models().crops) in self.model.choices:
            self.model.value = crop_aware  # trained on crops as this dock cuts them
        self.default_whole()
        self.model.changed.connect(self.default_whole)
        self.finish_layout()

    def default_whole(self, _model=None) -> None:
        """The whole-image model the chosen model pairs with, as the CLI pairs them
        (:func:`~wavegms.store.catalogue.box_models`): busi-box's crops with busi's whole
        image; any other model's crops alone."""
        default = box_models()  # lists the installed models once
        partner = default.whole if self.model.value == default.crops else None
        self.whole.value = partner if partner in self.whole.choices else NO_WHOLE

    def _layers(self, kind):
        def choices(_widget=None):
            return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, kind)]

        return choices

    def start(self) -> None:
        image, shapes = self.image.value, self.shapes.value
        if not isinstance(image, Image) or image not in self.viewer.layers:
            raise InputError("no image layer chosen: open or add an image first")
        if not isinstance(shapes, Shapes) or shapes not in self.viewer.layers:
            raise InputError("no shapes layer chosen: add one and draw rectangles on it")
        if not self.model.value:
            raise InputError("no model available: train or fine-tune one first")
        rectangles = [
            v for v, kind in zip(shapes.data, shapes.shape_type, strict=True) if kind == "rectangle"
        ]
        ndim = len(data_shape(image)) - (1 if image.rgb else 0)

        def to_image(point: np.ndarray) -> np.ndarray:
            world = shapes.data_to_world(point)
            return np.asarray(image.world_to_data(world), float)[-ndim:]

        boxes = rectangles_to_boxes(rectangles, to_image, ndim)
        self.target, self.target_shape = image, data_shape(image)
        self.start_thread(
            box_job, f"segmenting {image.name} in {sum(map(len, boxes.values()))} box(es)",
            data=layer_source(image), rgb=bool(image.rgb), boxes=boxes, model=self.model.value,
            device=self.device.value, threshold=float(self.threshold.value),
            margin=float(self.margin.value), slot=self.slot, whole=self.whole.value,
            whole_slot=self.whole_slot,
        )  # fmt: skip

    def on_returned(self, labels: np.ndarray) -> None:
        image = self.target
        if (
            image is None
            or image not in self.viewer.layers
            or data_shape(image) != (self.target_shape)
        ):
            self.status.value = "the image layer changed while it was segmented; nothing added"
            return
        layer = self.viewer.add_labels(
            labels, name=boxes_name(image), scale=image.scale[-labels.ndim :],
            translate=image.translate[-labels.ndim :], metadata=dict(image.metadata),
        )  # fmt: skip
        found = len(np.unique(labels)) - 1
        self.status.value = f"done: {layer.name} ({found} lesion label(s))"
