"""The work behind the fine-tune dock's buttons, run in worker threads (``runner``): preparing
a run (its name reserved, a share of the pairs held out, the rest snapshot), judging its model
against the one it would replace, installing it once chosen, and the runs left open by an
earlier session. Qt-free."""

from __future__ import annotations

from pathlib import Path

from wavegms.inference.adoption import Comparison, judge_run, plan_text, prepare_run
from wavegms.training.finetune import FinetuneRequest
from wavegms.training.training_set import TrainingSet


def prepare_job(pairs: TrainingSet, request: FinetuneRequest) -> tuple[FinetuneRequest, str]:
    """The prepared request, and how its model will be judged (and at what cost)."""
    pairs.tidy()  # files an interrupted add left behind
    request = prepare_run(pairs, request)
    return request, plan_text(request)


def judge_job(current: str, request: FinetuneRequest, progress=None, cancel=None) -> Comparison:
    return judge_run(
        current, request.out_dir, request.new_name, request.device, 0.5, progress, cancel
    )


def install_job(run_dir: str, name: str) -> str:
    """Install a run's best checkpoint as ``name``; its reservation ends."""
    from wavegms.store.reservations import release_name
    from wavegms.training.finetune import install_model

    install_model(run_dir, name)
    release_name(name)
    return name


def discard_job(name: str) -> str:
    """The user declined a run's model: its name is free again (the run folder stays)."""
    from wavegms.store.reservations import release_name

    release_name(name)
    return name


def open_runs_job() -> list[tuple[str, str, str, bool]]:
    """(name, run folder, description, finished) of each run whose name is still reserved:
    running, finished and not reviewed, or ended without a word (after a restart)."""
    from wavegms.store.reservations import FINISHED, open_runs

    return [(r.name, r.run_dir, r.describe(), r.state == FINISHED) for r in open_runs()]


def best_epoch_text(outcome: dict) -> str:
    return (
        f"epoch {outcome['best_epoch']} of {outcome['epochs_done']} (validation Dice "
        f"{float(outcome['best_val_dice']):.3f}, run folder {Path(outcome['run_dir']).name})"
    )
