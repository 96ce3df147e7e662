"""The fine-tune dock's second half: what a finished run leads to. A model is installed and
selected in Segment only when it is better than its base on the pairs held out of its training
(``inference.adoption``), or when the user says so; a run stopped early offers its best
validated checkpoint and installs nothing on its own; runs an earlier session left unreviewed
are offered when the dock opens (``store.reservations``)."""

from __future__ import annotations

from wavegms.napari import background
from wavegms.napari.feedback import guarded
from wavegms.napari.finetune_fields import outcome_text
from wavegms.napari.finetune_jobs import best_epoch_text, discard_job, install_job, judge_job
from wavegms.napari.runner import run_light
from wavegms.napari.settings import SegmentChoices, load_settings, save_settings
from wavegms.training.finetune import FinetuneRequest


class FinetuneAdoption:
    """Mixed into ``FinetuneWidget`` (a ``JobForm``): uses its request, status, plot,
    adoption panel and job runner."""

    def on_returned(self, result) -> None:
        """The run's outcome (then its comparison): a model is installed and selected only
        when better than its base on the held-out pairs, or when the user says so."""
        if self.phase == "judge":
            return self._judged(result)
        self.outcome, self.phase = result, ""
        if result["best_model"] in (None, "None"):
            self.status.value = (
                "stopped before the first epoch ended: no model was made (nothing written "
                f"but the run folder {result['run_dir']})"
            )
            run_light(discard_job, self.request.new_name, then=lambda _: None, status=self.status)
            return
        self.plot.mark_chosen(result["best_epoch"], result["val_images"])
        if result["cancelled"]:  # stopped early: offered, never installed on its own
            self.adoption.ask(f"stopped early; its best validated checkpoint is "
                              f"{best_epoch_text(result)}. Install it?", "Install it")  # fmt: skip
            return
        self.phase = "judge"
        self._next_job = self._judge

    def _judge(self) -> None:
        base = self.request.base_model
        self.start_thread(judge_job, f"comparing {self.request.new_name} with {base}",
                          current=base, request=self.request)  # fmt: skip

    def _judged(self, comparison) -> None:
        from wavegms.inference.adoption import Verdict

        self.phase = ""
        if comparison.verdict is Verdict.BETTER:
            self.status.value = comparison.text()
            self.adopt()
        else:
            self.adoption.ask(comparison.text(), "Install it anyway")

    def adopt(self, _value=None) -> None:
        """Install the model waiting for a decision, then select it in Segment."""
        self.adoption.close_question()
        request = self.request
        run_light(install_job, request.out_dir, request.new_name,
                  then=guarded(self._installed, self.status), status=self.status)  # fmt: skip

    def _installed(self, name: str) -> None:
        self.fields["base_model"].reset_choices()
        self.export_model.reset_choices()
        if name in self.export_model.choices:
            self.export_model.value = name
        segment = load_settings(SegmentChoices)  # the new model, selected in Segment
        segment.model = name
        save_settings(segment)
        background.refresh_model_lists(self.viewer, select=name)
        self.export_form.refresh()
        note = outcome_text(name, self.outcome) if self.outcome else f"installed {name!r}"
        self.status.value = f"{note}; installed and selected in Segment"
        self.fill_new_name()  # the next run needs a new name

    def decline(self, _value=None) -> None:
        self.adoption.close_question()
        name = self.request.new_name
        self.status.value = f"{name!r} was not installed (its run folder stays: {self.run_dir})"
        run_light(discard_job, name, then=lambda _: None, status=self.status)

    def _show_open_runs(self, runs: list) -> None:
        """Runs an earlier session left: listed; the first finished one is offered."""
        if not runs or self.busy:
            return
        self.status.value = "fine-tunes not yet reviewed: " + "; ".join(r[2] for r in runs)
        finished = [r for r in runs if r[3]]
        if finished:
            name, run_dir = finished[0][:2]
            self.request = FinetuneRequest("", "", name, out_dir=run_dir)
            self.adoption.ask(f"{name!r} finished while it was not reviewed; install it?",
                              "Install it")  # fmt: skip
