"""The fine-tune dock: collect corrected image/labels pairs, then fine-tune a new model.

Pairs go to disk at once (``training_set``). Training runs in a child process
(``finetune_job``) polled with a QTimer, so napari stays responsive, Stop is immediate and
the child's memory is returned when it ends. The result is a new, named user model; the base
model and shipped models are never written to.
"""

from __future__ import annotations

import multiprocessing
import queue
from typing import TYPE_CHECKING

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    Select,
    SpinBox,
)
from napari.layers import Image, Labels
from napari.utils.notifications import show_warning
from qtpy.QtCore import QTimer

from wavegms.core.errors import InputError
from wavegms.napari.common import (
    LayerWatcher,
    ProgressDisplay,
    current_plane,
    device_choices,
    model_choices,
    report_error,
)
from wavegms.napari.finetune_job import train_process
from wavegms.napari.plot import LossPlot
from wavegms.napari.settings import FinetuneSettings, SegmentSettings, load_settings, save_settings
from wavegms.napari.training_set import TrainingSet
from wavegms.training.finetune import FinetuneRequest, install_model, new_run_dir

if TYPE_CHECKING:
    import napari


class FinetuneWidget(Container):
    poll_ms = 200
    stop_grace_ms = 15_000  # after Stop, the child is terminated if still running by then

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        s = self.settings = load_settings(FinetuneSettings)
        self.process = None
        self.messages = None
        self.stop_event = None
        self.run_dir = None
        self.new_name = ""
        self.outcome: dict | None = None  # the child's last word: ("done"|"error", payload)
        self.image = ComboBox(label="image", choices=self._layer_choices(Image))
        self.labels_layer = ComboBox(label="labels", choices=self._layer_choices(Labels))
        self.project = LineEdit(label="project", value=s.project)
        self.add_button = PushButton(text="Add to training set")
        self.pairs = Select(label="pairs", choices=[])
        self.remove_button = PushButton(text="Remove selected pairs")
        self.base_model = ComboBox(label="base model", choices=model_choices)
        self.device = ComboBox(label="device", choices=device_choices)
        self.epochs = SpinBox(label="epochs", min=1, max=10_000, value=s.epochs)
        self.lr = FloatSpinBox(label="learning rate", min=1e-6, max=1.0, step=1e-4, value=s.lr)
        self.lr.native.setDecimals(6)
        self.batch_size = SpinBox(label="batch size", min=1, max=256, value=s.batch_size)
        self.val_fraction = FloatSpinBox(
            label="validation fraction", min=0.05, max=0.9, step=0.05, value=s.val_fraction
        )
        self.augment = CheckBox(text="augmentation", value=s.augment)
        self.fast_cpu = CheckBox(
            text="fast CPU schedule (cached targets, no decoder)", value=s.fast_cpu
        )
        self.new_model = LineEdit(label="new model name", value="")
        self.train_button = PushButton(text="Fine-tune")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.status = Label(value="")
        heading = Label(value="<b>Training pairs</b>")
        self.extend([heading, self.image, self.labels_layer, self.project, self.add_button])
        self.extend([self.pairs, self.remove_button, Label(value="<b>Fine-tuning</b>")])
        self.extend([self.base_model, self.device, self.epochs, self.lr])
        self.extend([self.batch_size, self.val_fraction, self.augment, self.fast_cpu])
        self.extend([self.new_model, self.train_button, self.stop_button, self.status])
        self.plot = LossPlot()
        self.native.layout().addWidget(self.plot)
        self.progress = ProgressDisplay(self.status)
        self.timer = QTimer()
        self.timer.setInterval(self.poll_ms)
        self.timer.timeout.connect(self.poll)
        if s.base_model in self.base_model.choices:
            self.base_model.value = s.base_model
        if s.device in self.device.choices:
            self.device.value = s.device
        self.watcher = LayerWatcher(viewer, self._on_layers_changed)
        self.add_button.changed.connect(self.add_pair)
        self.remove_button.changed.connect(self.remove_selected)
        self.project.changed.connect(self.refresh_pairs)
        self.train_button.changed.connect(self.start_training)
        self.stop_button.changed.connect(self.stop)
        self.changed.connect(self._save_settings)  # any choice the user makes is kept
        self.refresh_pairs()

    # -- layers and pairs ------------------------------------------------------------------
    def _layer_choices(self, kind):
        return LayerChoices(self.viewer, kind)

    def _on_layers_changed(self) -> None:
        self.reset_choices()  # layers, and the model list (new models appear too)

    def training_set(self) -> TrainingSet:
        return TrainingSet(self.project.value.strip())

    def refresh_pairs(self, _value=None) -> None:
        try:
            self.pairs.choices = self.training_set().names()
        except Exception as err:
            self.pairs.choices = []
            report_error(self.status, err)

    def add_pair(self, _value=None) -> None:
        """Write the shown plane of the image and its labels to the project folder."""
        try:
            image, labels = self.image.value, self.labels_layer.value
            if not isinstance(image, Image):
                raise InputError("choose an image layer to add")
            if not isinstance(labels, Labels):
                raise InputError("choose the labels layer you corrected")
            entry, notes = self.training_set().add_with_notes(
                current_plane(image, self.viewer), current_plane(labels, self.viewer), image.name
            )
            self.refresh_pairs()
            self.status.value = f"added {entry.name} ({len(self.pairs.choices)} pairs)"
            if notes:  # the pair was added, but not quite as drawn: say so
                self.status.value += "; note: " + " ".join(notes)
                show_warning(" ".join(notes))
        except Exception as err:
            report_error(self.status, err)

    def remove_selected(self, _value=None) -> None:
        try:
            chosen = list(self.pairs.value)
            if not chosen:
                raise InputError("select the pairs to remove in the list first")
            self.training_set().remove(chosen)
            self.refresh_pairs()
            self.status.value = f"removed {len(chosen)} pair(s)"
        except Exception as err:
            report_error(self.status, err)

    def _save_settings(self, _value=None) -> None:
        self.settings = FinetuneSettings(
            project=self.project.value.strip(),
            base_model=self.base_model.value or "",
            device=self.device.value or "auto",
            epochs=int(self.epochs.value),
            lr=float(self.lr.value),
            batch_size=int(self.batch_size.value),
            val_fraction=float(self.val_fraction.value),
            augment=bool(self.augment.value),
            fast_cpu=bool(self.fast_cpu.value),
        )
        save_settings(self.settings)

    # -- training --------------------------------------------------------------------------
    @property
    def training(self) -> bool:
        return self.process is not None

    def start_training(self, _value=None) -> None:
        try:
            self._start()
        except Exception as err:
            report_error(self.status, err)

    def _start(self) -> None:
        from wavegms.store.catalogue import check_new_model_name

        if self.training:
            return
        pairs = self.training_set()
        if len(pairs.names()) < 2:
            raise InputError(
                f"the training set {pairs.project!r} has {len(pairs.names())} pair(s); add at "
                "least 2 image/labels pairs first"
            )
        if not self.base_model.value:
            raise InputError("choose a base model to fine-tune")
        name = self.new_model.value.strip()
        check_new_model_name(name)
        pairs.tidy()
        self._save_settings()
        self.new_name, self.run_dir, self.outcome = name, new_run_dir(name), None
        request = FinetuneRequest(
            data_dir=str(pairs.root),
            base_model=self.base_model.value,
            new_name=name,
            out_dir=str(self.run_dir),
            device=self.device.value,
            epochs=self.settings.epochs,
            lr=self.settings.lr,
            batch_size=self.settings.batch_size,
            val_fraction=self.settings.val_fraction,
            augment=self.settings.augment,
            fast_cpu=self.settings.fast_cpu,
        )
        context = multiprocessing.get_context("spawn")
        self.messages, self.stop_event = context.Queue(), context.Event()
        self.process = context.Process(
            target=train_process, args=(request, self.messages, self.stop_event), daemon=True
        )
        self.process.start()
        self.plot.clear()
        self.progress.start(f"fine-tuning {name}")
        self.train_button.enabled, self.stop_button.enabled = False, True
        self.timer.start()

    def stop(self, _value=None) -> None:
        """Ask the child to stop after its current batch; terminate it after a grace period."""
        if self.stop_event is not None:
            self.stop_event.set()
            self.status.value = "stopping after the current batch…"
            QTimer.singleShot(self.stop_grace_ms, self._terminate)

    def _terminate(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.terminate()

    def shutdown(self) -> None:
        """End a running training at once (no model is installed)."""
        self.timer.stop()
        if self.process is not None:
            self.process.terminate()
            self.process.join(5)
            self.process = self.messages = self.stop_event = None
        self.progress.close()

    def poll(self) -> None:
        """Render the child's messages; finish when it has ended."""
        try:
            self._drain()
            if self.process is not None and not self.process.is_alive():
                self._drain()
                self._finish()
        except Exception as err:
            report_error(self.status, err)

    def _drain(self) -> None:
        while self.messages is not None:
            try:
                kind, payload = self.messages.get_nowait()
            except queue.Empty:
                return
            if kind == "progress":
                self.progress.show(payload)
                if payload.stage == "epoch":
                    m = payload.metrics
                    self.plot.add_epoch(payload.done, m.get("loss", 0.0), m.get("val_dice", 0.0))
            else:
                self.outcome = {"kind": kind, "payload": payload}

    def _finish(self) -> None:
        self.timer.stop()
        exitcode = self.process.exitcode
        self.process.join(1)
        self.process = self.messages = self.stop_event = None
        self.progress.close()
        self.train_button.enabled, self.stop_button.enabled = True, False
        outcome = self.outcome or {"kind": "killed", "payload": exitcode}
        if outcome["kind"] == "error":
            report_error(self.status, f"fine-tuning failed: {outcome['payload']}")
            return
        if outcome["kind"] == "killed" and exitcode not in (None, 0, -15):
            report_error(self.status, f"the training process ended with exit code {exitcode}")
            return
        path = install_model(self.run_dir, self.new_name)
        self._select_in_segment_widgets(self.new_name)
        self.base_model.reset_choices()
        stopped = outcome["kind"] == "killed" or outcome["payload"].get("cancelled")
        how = "stopped; kept the best completed epoch" if stopped else "done"
        self.status.value = f"{how}: new model {self.new_name!r} ({path.name})"

    def _select_in_segment_widgets(self, name: str) -> None:
        from wavegms.napari.segment import SegmentWidget

        segment = load_settings(SegmentSettings)
        segment.model = name
        save_settings(segment)
        for widget in self.viewer.window.dock_widgets.values():
            if isinstance(widget, SegmentWidget):
                widget.refresh_models(select=name)


class LayerChoices:
    """A ComboBox choices callable: the viewer's layers of one kind, by name."""

    def __init__(self, viewer, kind) -> None:
        self.viewer, self.kind = viewer, kind

    def __call__(self, _widget=None) -> list[tuple[str, object]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, self.kind)]
