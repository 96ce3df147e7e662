"""The fine-tune steps of a review (:class:`wavegms.inference.review.ReviewSession`): fine-tune
on a snapshot of the accepted pairs less a held-out share, then adopt the new model only when
it is better on the held-out pairs (``inference.adoption``), or leave the choice to the user
when too few were held out. The new model's name is reserved from the start
(``store.reservations``) and the model is installed only when adopted.
"""

from __future__ import annotations

import dataclasses
import time

from wavegms.core.errors import InputError
from wavegms.core.progress import CancelToken, ProgressCallback
from wavegms.inference.adoption import (
    Comparison,
    Verdict,
    judge_run,
    prepare_run,
    train_run_folds,
)
from wavegms.training.finetune import MIN_PAIRS, FinetuneOutcome, FinetuneRequest, finetune
from wavegms.training.training_set import TrainingSet


class AdoptionSteps:
    """Mixed into ``ReviewSession``: uses its ``state``, ``save`` and ``_lock``."""

    def finetune_request(self, template: FinetuneRequest | None = None) -> FinetuneRequest:
        """The dock's settings (``template``; default: the library's) on a snapshot of the
        accepted pairs less those held out to judge the result, from the current model, to a
        new name reserved now."""
        pairs = TrainingSet(self.state.project)
        if len(pairs.names()) < MIN_PAIRS:  # the fine-tune's own least, said before it starts
            raise InputError(
                f"accept at least {MIN_PAIRS} images before fine-tuning "
                f"({len(pairs.names())} so far)"
            )
        stem = (self.state.models[0] if self.state.models else self.state.model).split("-review")
        name = f"{stem[0][:40]}-review{time.strftime('%Y%m%d-%H%M%S')}"
        base = template or FinetuneRequest(data_dir="", base_model="", new_name="")
        request = dataclasses.replace(base, base_model=self.state.model, new_name=name)
        return prepare_run(pairs, request)

    def finished(self, request: FinetuneRequest, outcome: FinetuneOutcome | dict) -> None:
        """A fine-tune ended: its model (if any) awaits :meth:`compare` and a decision."""
        best = outcome["best_model"] if isinstance(outcome, dict) else outcome.best_model
        if best in (None, "None"):
            from wavegms.store.reservations import release_name

            release_name(request.new_name)  # nothing was made: the name is free again
            return
        with self._lock:
            self.state.candidate, self.state.candidate_run = request.new_name, request.out_dir
            self.save()

    def compare(
        self, device: str = "auto", progress=None, cancel: CancelToken | None = None
    ) -> Comparison:
        """Score the model awaiting a decision against the current one on the held-out pairs."""
        if not self.state.candidate:
            raise InputError("no fine-tuned model awaits a decision")
        return judge_run(
            self.state.model, self.state.candidate_run, self.state.candidate, device,
            self.state.threshold, progress, cancel,
        )  # fmt: skip

    def adopt(self) -> str:
        """Install the model awaiting a decision and segment with it from now on."""
        from wavegms.store.reservations import release_name
        from wavegms.training.finetune import install_model

        with self._lock:
            name, run = self.state.candidate, self.state.candidate_run
            if not name:
                raise InputError("no fine-tuned model awaits a decision")
            install_model(run, name)
            release_name(name)
            self.state.model, self.state.candidate, self.state.candidate_run = name, "", ""
            self.state.models.append(name)
            self.save()
            return name

    def decline(self) -> None:
        """Keep the current model; the new one is not installed (its run folder stays)."""
        from wavegms.store.reservations import release_name

        with self._lock:
            release_name(self.state.candidate)
            self.state.candidate, self.state.candidate_run = "", ""
            self.save()

    def finetune_now(
        self,
        template: FinetuneRequest | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> tuple[FinetuneOutcome, Comparison | None]:
        """Fine-tune, compare, and adopt the new model only when it is better; when too few
        pairs were held out the decision is left (:meth:`adopt` or :meth:`decline`)."""
        request = self.finetune_request(template)
        outcome = finetune(request, progress, cancel, install=False)
        if outcome.best_model is not None and not outcome.cancelled:
            train_run_folds(request, progress, cancel)  # the k-fold check of few pairs
        self.finished(request, outcome)
        if not self.state.candidate:
            return outcome, None
        comparison = self.compare(request.device, progress, cancel)
        if comparison.verdict is Verdict.BETTER:
            self.adopt()
        elif comparison.verdict is Verdict.NOT_BETTER:
            self.decline()
        return outcome, comparison
