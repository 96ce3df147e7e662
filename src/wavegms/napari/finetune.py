"""The fine-tune dock: collect corrected image/labels pairs, then fine-tune a new model.

Pairs go to disk at once (``training.training_set``). Training is a job in a child process
(``process_job.ProcessJob`` over ``python -m wavegms.napari.finetune_job``), so napari stays
responsive and Stop is quick. The library trains and installs the best epoch under the new
name; the dock shows what it made and selects it in the Segment widgets. Base and shipped models
are never written to.
"""

from __future__ import annotations

import dataclasses
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import ComboBox, Label, LineEdit, PushButton, Select
from napari.layers import Image, Labels
from napari.utils.notifications import show_info, show_warning

from wavegms.core.errors import InputError
from wavegms.core.progress import Progress
from wavegms.napari import background
from wavegms.napari.adoption_panel import AdoptionPanel
from wavegms.napari.close_guard import CloseGuard, ask_on_close, wait_until_idle
from wavegms.napari.export_action import ExportForm
from wavegms.napari.feedback import guarded, report_error
from wavegms.napari.fields import (
    LayerChoices,
    complete_device_list,
    model_choices,
    on_edit_finished,
)
from wavegms.napari.finetune_adoption import FinetuneAdoption
from wavegms.napari.finetune_fields import free_model_name, request_fields
from wavegms.napari.finetune_job import LOG_NAME, launch
from wavegms.napari.finetune_jobs import open_runs_job, prepare_job
from wavegms.napari.layers import LayerWatcher, current_plane
from wavegms.napari.plot import LossPlot
from wavegms.napari.runner import JobForm, run_light
from wavegms.napari.settings import FinetuneSettings, load_settings, save_settings
from wavegms.training.finetune import FinetuneRequest, new_run_dir
from wavegms.training.training_set import TrainingSet

if TYPE_CHECKING:
    import napari


def _weakly(owner, method: str):
    """``owner.method(result)`` while ``owner`` still exists (errors shown as usual)."""
    ref = weakref.ref(owner)

    def call(result) -> None:
        target = ref()
        if target is not None:
            guarded(getattr(target, method), target.status)(result)

    return call


class FinetuneWidget(FinetuneAdoption, JobForm):
    cancel_message = "stopping after the current batch…"
    dock_title = "Fine-tune"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__("Fine-tune", cancel_text="Stop")
        self.viewer = viewer
        self.settings = load_settings(FinetuneSettings)
        self.request: FinetuneRequest | None = None  # of the running or last job
        self.run_dir: Path | None = None
        self.outcome: dict | None = None  # the last job's FinetuneOutcome, as sent
        self.phase = ""  # "prepare", "train" or "judge": the step running
        self._next_job = None  # started once the running job has ended
        self.image = ComboBox(label="image", choices=LayerChoices(viewer, Image))
        self.labels_layer = ComboBox(label="labels", choices=LayerChoices(viewer, Labels))
        self.project = LineEdit(label="project", value=self.settings.project)
        self.add_button = PushButton(text="Add to training set")
        # Choices read from disk whenever napari or a layer change resets the form's choices:
        # a fixed list was emptied by each reset (issue 17: pairs shown as lost).
        self.pairs = Select(label="pairs", choices=self._pair_names)
        self.pairs.native.setMaximumHeight(110)  # the list scrolls; the dock stays short
        self.remove_button = PushButton(text="Remove selected pairs")
        self.fields = request_fields()
        # The Fine-tune button, progress, status, the choice of model and the plot first: in
        # view however short the dock (issue 25: at 1280x800 it was scrolled out of sight).
        self.adoption = AdoptionPanel(self.adopt, self.decline, self.status)
        self.add_rows(self.buttons, self.progress_bar, self.status, self.adoption)
        self.add_rows(Label(value="<b>Training pairs</b>"))
        self.extend([self.image, self.labels_layer, self.project, self.add_button])
        self.extend([self.pairs, self.remove_button])
        self.add_rows(Label(value="<b>Fine-tuning</b>"))
        self.extend(list(self.fields.values()))
        self.export_model = ComboBox(label="export", choices=model_choices)  # every model
        self.extend([self.export_model])
        self.export_form = ExportForm(self.made_model)  # "Export..." of the model chosen
        self.add_rows(self.export_form)
        self.plot = LossPlot()  # under the status line (shown once a run has epochs)
        layout = self.content.layout()
        layout.insertWidget(layout.indexOf(self.status.native.parentWidget()) + 1, self.plot)
        self._show_request(self.settings.request)
        self.watcher = LayerWatcher(viewer, self.reset_choices)  # layers, and new models
        self.close_guard = CloseGuard(self)
        self.add_button.changed.connect(guarded(self.add_pair, self.status))
        self.remove_button.changed.connect(guarded(self.remove_selected, self.status))
        on_edit_finished([self.project], self._project_edited, self.status)
        kept = [w for name, w in self.fields.items() if name != "new_name"]
        on_edit_finished(kept, self._save_settings, self.status)
        complete_device_list(self.fields["device"], self.settings.request.device)
        self.refresh_pairs()
        self.fill_new_name()
        background.tell_background_ends(self.status)  # runs that ended while napari was closed
        # A weak reference: a form closed before the listing comes back is not kept alive.
        run_light(open_runs_job, then=_weakly(self, "_show_open_runs"), status=self.status)
        self.finish_layout()

    def fill_new_name(self) -> None:
        """Fill in a model name not taken yet, unless the user has typed one still free."""
        name, busy = self.fields["new_name"], [run.name for run in background.WATCHED]
        name.value = free_model_name(name.value.strip(), self.project.value.strip(), busy)

    # -- the request the form shows --------------------------------------------------------
    def _show_request(self, request: FinetuneRequest) -> None:
        for name, widget in self.fields.items():
            value = getattr(request, name)
            if isinstance(widget, ComboBox) and value not in widget.choices:
                continue  # e.g. a model since deleted: keep the list's own choice
            widget.value = value

    def form_request(self) -> FinetuneRequest:
        """The saved request with the form's values (no data folder or run folder yet)."""
        values = {name: widget.value for name, widget in self.fields.items()}
        values["base_model"] = values["base_model"] or ""
        values["device"] = values["device"] or "auto"
        values["new_name"] = values["new_name"].strip()
        return dataclasses.replace(self.settings.request, **values)

    def _save_settings(self) -> None:
        request = dataclasses.replace(self.form_request(), new_name="")  # a name is used once
        self.settings = FinetuneSettings(project=self.project.value.strip(), request=request)
        save_settings(self.settings)

    # -- layers and pairs ------------------------------------------------------------------
    def training_set(self) -> TrainingSet:
        return TrainingSet(self.project.value.strip())

    def _project_edited(self) -> None:
        self.refresh_pairs()
        self._save_settings()

    def _pair_names(self, _widget=None) -> list[str]:
        try:
            return self.training_set().names()
        except Exception:  # shown by refresh_pairs; a choices callable must not raise
            return []

    def refresh_pairs(self) -> None:
        self.pairs.reset_choices()
        try:
            self.training_set().names()
        except Exception as err:
            report_error(self.status, err)

    def add_pair(self, _value=None) -> None:
        """Write the shown plane of the image and its labels to the project folder."""
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

    def remove_selected(self, _value=None) -> None:
        chosen = list(self.pairs.value)
        if not chosen:
            raise InputError("select the pairs to remove in the list first")
        self.training_set().remove(chosen)
        self.refresh_pairs()
        self.status.value = f"removed {len(chosen)} pair(s)"

    # -- training ------------------------------------------------------------------------
    def start(self) -> None:
        """Check the form here; reserve the name, hold pairs out and snapshot the rest in a
        worker (files), then start the child process."""
        if not self.fields["new_name"].value.strip():
            self.fill_new_name()
        request = self.form_request()
        if not request.base_model:
            raise InputError("choose a base model to fine-tune")
        self._save_settings()
        request = dataclasses.replace(request, out_dir=str(new_run_dir(request.new_name)))
        self.outcome, self.phase = None, "prepare"
        self.export_form.refresh()
        self.adoption.close_question()
        self.run_button.enabled = False  # until the child has started
        self.status.value = f"preparing to fine-tune {request.new_name}…"
        launched = guarded(self._launch, self.status)
        run_light(prepare_job, self.training_set(), request, then=launched,
                  status=self.status, failed=self._prepare_failed)  # fmt: skip

    def _prepare_failed(self) -> None:
        self.phase, self.run_button.enabled = "", True

    def _launch(self, prepared: tuple[FinetuneRequest, str]) -> None:
        request, plan = prepared  # plan: how its model will be judged, at what cost
        self.request, self.run_dir, self.phase = request, Path(request.out_dir), "train"
        self.plot.clear()
        self.close_guard.watch(self.native.window())  # napari's window, when docked
        text = f"starting to fine-tune {request.new_name}…" + (f" ({plan})" if plan else "")
        self.start_process(launch, text, request, request.epochs, note=plan)

    def on_progress(self, report: Progress) -> None:
        if report.stage == "epoch":
            m = report.metrics
            self.plot.add_epoch(report.done, m.get("loss", 0.0), m.get("val_dice"))

    def on_errored(self, err: BaseException | str) -> None:
        if isinstance(err, str):  # the child's message
            err = f"fine-tuning failed: {err}"
        if self.phase == "judge":  # no figures: the user decides
            self.adoption.ask(f"the models could not be compared ({err}); install it anyway?",
                              "Install it")  # fmt: skip
        self.phase = ""
        super().on_errored(err)

    def on_finished(self) -> None:
        job, self._next_job = self._next_job, None
        if job is not None:
            return job()
        if not self.fields["new_name"].value.strip():
            self.fill_new_name()

    # -- napari closing while training (close_guard) ---------------------------------------
    def ask_on_close(self) -> str:
        return ask_on_close(self)

    def stop_and_wait(self, seconds: float) -> None:
        """Stop at the next batch and wait for the best completed epoch to be installed."""
        self.cancel()
        if not wait_until_idle(self, seconds):
            self.shutdown()  # the window closes now; the run folder keeps what was saved

    def leave_in_background(self) -> None:
        """Let the child train on (after napari too, if it goes); a
        :class:`~wavegms.napari.background.BackgroundTraining` tells when it is done."""
        job = self.job
        if job is None or not job.detach():
            return
        self.job = None  # forgotten: not killed with the form
        self._end()
        background.BackgroundTraining(job, self.request.new_name, self.run_dir, self.viewer)
        self.fill_new_name()  # not the name the background run will install
        self.status.value = (
            f"fine-tuning {self.request.new_name!r} goes on in the background; a notification "
            f"says when it is done (record: {self.run_dir / LOG_NAME})"
        )
        show_info(self.status.value)

    def made_model(self) -> str | None:
        """The model "Export..." offers: the one chosen in the list of installed models."""
        return self.export_model.value or None
