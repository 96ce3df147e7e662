"""Whether a fine-tuned model is better than the model it would replace.

A new model becomes the active one, or segments anything again, only once it has been scored
against the model it would replace on accepted pairs it did not train on. Before a fine-tune,
:func:`hold_out` sets a share of the pairs aside (the fine-tune trains on a snapshot of the
others); after it, :func:`compare_models` scores both models on the held-out pairs and
:func:`decide` says what the figures allow: adopt (better), keep the current model (not
better), or let the user choose (too few pairs to tell). With fewer than ten pairs nothing is
held out: the new model trains on all of them and a k-fold check judges it
(``inference.cross_validation``; :func:`train_run_folds`, then :func:`judge_run`).

Qt-free; torch only through :class:`wavegms.inference.segmenter.Segmenter`, imported when
models are scored.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from wavegms.core.errors import InputError
from wavegms.core.files import read_json, write_json
from wavegms.core.progress import CancelToken, ProgressCallback, check_cancel, report
from wavegms.inference.cross_validation import cost_text, fold_model, plan_folds, train_folds
from wavegms.training.finetune import MIN_PAIRS, FinetuneRequest, new_run_dir
from wavegms.training.training_set import TrainingSet

HOLD_OUT_JSON = "hold_out.json"  # in a fine-tune's run folder: the pairs it did not train on

#: The share of the accepted pairs held out to score a new model, and the fewest that tell
#: anything: with fewer, every pair goes to training and the user decides.
HOLD_OUT_SHARE = 0.2
MIN_HELD_OUT = 3


class Verdict(enum.Enum):
    BETTER = "better"  # adopt the new model
    NOT_BETTER = "not better"  # keep the current one (the user may still choose the new one)
    UNDECIDED = "too few pairs to tell"  # no fair test: the user chooses


@dataclass(frozen=True)
class Split:
    """The pairs a fine-tune trains on and those held out to judge it, or (few pairs: none
    held out) the folds of its k-fold check."""

    train: list[str]
    held_out: list[str]
    folds: list[list[str]] = field(default_factory=list)


def hold_out(names: Sequence[str], seed: int = 0) -> Split:
    """Set :data:`HOLD_OUT_SHARE` of ``names`` aside (at least :data:`MIN_HELD_OUT`), when
    enough are left to fine-tune on (:data:`MIN_PAIRS`) and enough pairs for that
    (``cross_validation.KFOLD_BELOW``); else hold none out and plan a k-fold check."""
    names = sorted(names)
    folds = plan_folds(names, seed)
    count = max(MIN_HELD_OUT, round(HOLD_OUT_SHARE * len(names)))
    if folds or len(names) - count < MIN_PAIRS:
        return Split(list(names), [], folds)
    held = sorted(random.Random(seed).sample(names, count))
    return Split([n for n in names if n not in held], held)


@dataclass(frozen=True)
class Comparison:
    """Both models' mean DSC (%) on the held-out pairs, and what they allow."""

    current: str
    candidate: str
    current_dsc: float | None  # None: not scored (no pair held out)
    candidate_dsc: float | None
    held_out: int  # pairs scored (held out, or every pair of a k-fold check)
    verdict: Verdict
    folds: int = 0  # a k-fold check's folds (0: held-out pairs)

    def text(self) -> str:
        if self.verdict is Verdict.UNDECIDED and self.folds:
            return (
                f"the {self.folds}-fold check was stopped before every fold model was "
                f"fine-tuned: no fair figures for {self.candidate!r} against "
                f"{self.current!r}; choose yourself"
            )
        if self.verdict is Verdict.UNDECIDED:
            return (
                f"{self.held_out} accepted pair(s) held out: too few to tell whether "
                f"{self.candidate!r} is better than {self.current!r} (accept at least "
                f"{MIN_PAIRS + MIN_HELD_OUT} images before fine-tuning for a fair test); "
                "choose yourself"
            )
        figures = (
            f"on {self.held_out} held-out pairs, DSC {self.candidate_dsc:.1f}% "
            f"({self.candidate!r}) against {self.current_dsc:.1f}% ({self.current!r})"
        )
        if self.folds:
            figures = (
                f"{self.folds}-fold check on all {self.held_out} accepted pairs (each scored "
                f"by a model fine-tuned without it; {self.candidate!r} trained on all), DSC "
                f"{self.candidate_dsc:.1f}% against {self.current_dsc:.1f}% ({self.current!r})"
            )
        if self.verdict is Verdict.BETTER:
            return f"{self.candidate!r} is better: {figures}"
        return f"{self.candidate!r} is not better, {self.current!r} stays: {figures}"


def decide(current: Sequence[float] | None, candidate: Sequence[float] | None) -> Verdict:
    """Better only when, on at least :data:`MIN_HELD_OUT` held-out pairs (DSC % per pair,
    the same pairs in the same order), the new model's mean is strictly higher and it wins
    on at least as many pairs as it loses (a mean carried by one pair is no evidence)."""
    if current is None or candidate is None or len(current) < MIN_HELD_OUT:
        return Verdict.UNDECIDED
    if len(current) != len(candidate):
        raise InputError(f"scored {len(current)} and {len(candidate)} pairs: not comparable")
    for value in (*current, *candidate):
        if not (math.isfinite(value) and 0.0 <= value <= 100.0):
            raise InputError(f"a model's held-out DSC is {value!r}, not a percentage")
    wins = sum(b > a for a, b in zip(current, candidate, strict=True))
    losses = sum(b < a for a, b in zip(current, candidate, strict=True))
    better = float(np.mean(candidate)) > float(np.mean(current)) and wins >= losses
    return Verdict.BETTER if better else Verdict.NOT_BETTER


def pair_dsc(
    model: str | Path,
    pairs_root: Path,
    names: Sequence[str],
    device: str = "auto",
    threshold: float = 0.5,
    cancel: CancelToken | None = None,
) -> list[float]:
    """The DSC (%) of ``model`` on each pair ``names`` of a dataset folder, scored at the
    image's own size."""
    from wavegms.data.images import read_image
    from wavegms.data.masks import read_mask
    from wavegms.inference.segmenter import Segmenter
    from wavegms.scoring.metrics import dice

    # Eager: exact fp32 and no graph to build for the few pairs a model is scored on (a
    # k-fold check scores four models).
    segmenter = Segmenter.load(model, device=device, backend="eager")
    scores = []
    for name in names:
        check_cancel(cancel)
        image = read_image(pairs_root / "images" / f"{name}.png")
        truth = read_mask(pairs_root / "masks" / f"{name}.png")
        binary, _ = segmenter.segment(image, threshold=threshold)
        scores.append(100.0 * dice(binary, truth))
    return scores


def compare_models(
    current: str,
    candidate: str | Path,
    pairs_root: Path,
    held_out: Sequence[str],
    device: str = "auto",
    threshold: float = 0.5,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    candidate_name: str = "",
) -> Comparison:
    """Score ``current`` and ``candidate`` (a name or a weights path) on ``held_out`` and
    decide (:func:`decide`)."""
    name = candidate_name or str(candidate)
    if len(held_out) < MIN_HELD_OUT:
        return Comparison(current, name, None, None, len(held_out), Verdict.UNDECIDED)
    scores = []
    for i, model in enumerate((current, candidate)):
        report(progress, "compare", i, 2, f"scoring {[current, name][i]} on held-out pairs")
        scores.append(pair_dsc(model, pairs_root, held_out, device, threshold, cancel))
    report(progress, "compare", 2, 2, "scored both models")
    verdict = decide(scores[0], scores[1])
    means = [float(np.mean(s)) for s in scores]
    return Comparison(current, name, means[0], means[1], len(held_out), verdict)


def prepare_run(pairs: TrainingSet, request: FinetuneRequest) -> FinetuneRequest:
    """Before a dock's fine-tune: reserve its new name, hold a share of ``pairs`` out and
    snapshot the others into the run folder; the request then trains on the snapshot."""
    from wavegms.store.reservations import reserve_name

    names = pairs.names()
    if len(names) < MIN_PAIRS:  # the fine-tune's own least, said before it starts
        raise InputError(
            f"the training set {pairs.project!r} has {len(names)} pair(s); fine-tuning needs "
            f"at least {MIN_PAIRS}"
        )
    run_dir = Path(request.out_dir) if request.out_dir else new_run_dir(request.new_name)
    reserve_name(request.new_name, run_dir)
    split = hold_out(names)
    pairs.snapshot(split.train, run_dir / "pairs")
    record = {"project": pairs.project, "train": split.train, "held_out": split.held_out,
              "folds": split.folds}  # fmt: skip
    write_json(run_dir / HOLD_OUT_JSON, record)
    return replace(request, data_dir=str(run_dir / "pairs"), out_dir=str(run_dir))


def judge_run(
    current: str,
    run_dir: str | Path,
    name: str,
    device: str = "auto",
    threshold: float = 0.5,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Comparison:
    """Compare a prepared run's best checkpoint (``name`` to be) with ``current`` on the
    pairs :func:`prepare_run` held out."""
    from wavegms.store.catalogue import model_paths

    record = read_json(Path(run_dir) / HOLD_OUT_JSON)
    if record.get("folds"):
        return judge_folds(current, run_dir, record["folds"], name, device, threshold,
                           progress, cancel)  # fmt: skip
    return compare_models(
        current, model_paths(Path(run_dir) / "best")[0], TrainingSet(record["project"]).root,
        record["held_out"], device, threshold, progress, cancel, name,
    )  # fmt: skip


def train_run_folds(
    request: FinetuneRequest,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> int:
    """After a prepared run's fine-tune: its k-fold check's fold models, when
    :func:`prepare_run` planned one (else nothing); returns how many finished."""
    folds = _planned_folds(request)
    return train_folds(request, folds, progress, cancel) if folds else 0


def _planned_folds(request: FinetuneRequest) -> list[list[str]]:
    path = Path(request.out_dir or "") / HOLD_OUT_JSON
    return (read_json(path).get("folds") or []) if request.out_dir and path.is_file() else []


def plan_text(request: FinetuneRequest) -> str:
    """How a prepared run will be judged, and what that costs, in the user's words."""
    folds = _planned_folds(request)
    if folds:
        return cost_text(sum(map(len, folds)), request.epochs)
    path = Path(request.out_dir or "") / HOLD_OUT_JSON
    held = read_json(path)["held_out"] if request.out_dir and path.is_file() else []
    return f"{len(held)} pair(s) held out to judge it" if held else ""


def judge_folds(
    current: str,
    run_dir: str | Path,
    folds: Sequence[Sequence[str]],
    name: str,
    device: str = "auto",
    threshold: float = 0.5,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Comparison:
    """The k-fold verdict: each fold model scored on its own fold, ``current`` on the same
    pairs (the run's snapshot of every pair), :func:`decide` on all the out-of-fold scores.
    A fold without a finished model leaves the choice to the user."""
    names = [n for fold in folds for n in fold]
    models = [fold_model(run_dir, i) for i in range(len(folds))]
    if None in models:
        return Comparison(current, name, None, None, len(names), Verdict.UNDECIDED, len(folds))
    root = Path(run_dir) / "pairs"
    report(progress, "compare", 0, len(folds) + 1, f"scoring {current} on {len(names)} pairs")
    before = pair_dsc(current, root, names, device, threshold, cancel)
    after: list[float] = []
    for i, (fold, model) in enumerate(zip(folds, models, strict=True)):
        report(progress, "compare", i + 1, len(folds) + 1, f"scoring fold model {i + 1}")
        after += pair_dsc(model, root, fold, device, threshold, cancel)
    means = [float(np.mean(s)) for s in (before, after)]
    verdict = decide(before, after)
    return Comparison(current, name, means[0], means[1], len(names), verdict, len(folds))
