"""The k-fold check of a fine-tune made from few accepted pairs.

With :data:`~wavegms.training.finetune.MIN_PAIRS` to ``KFOLD_BELOW - 1`` pairs, holding three
out (``adoption.hold_out``) would either leave none to score on or take a third of the user's
corrections away from the model offered. Instead the model offered trains on every pair, and
whether fine-tuning on these pairs helps is estimated by :data:`FOLDS`-fold cross-validation:
the pairs are dealt into folds; for each fold a model is fine-tuned from the same base on the
other pairs, and scored (``adoption``) on the fold it never saw, beside the current model on
the same pairs. The verdict uses every out-of-fold score.

The cost, said to the user before it starts (:func:`cost_text`): :data:`FOLDS` more
fine-tunes, each on about two-thirds of the pairs for at most :data:`FOLD_EPOCHS` epochs, run
after the fine-tune in the same process (on a 2-core CPU about as long again as the fine-tune
itself at its default 20 epochs). A fold model chooses its best epoch on one of its own
training pairs (:data:`LEAST_FOLD_VAL`), never on the fold it is scored on. Stop ends the
folds; the check is then incomplete and the user decides.
"""

from __future__ import annotations

import math
import random
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from wavegms.core.files import write_json
from wavegms.core.progress import CancelToken, Progress, ProgressCallback
from wavegms.training.finetune import MIN_PAIRS, FinetuneRequest

#: Fewer accepted pairs than this are judged by k-fold; from here on three or more are held out.
KFOLD_BELOW = 10
#: Folds: three keeps the cost to three extra fine-tunes while every fold model still trains
#: on at least three pairs (five pairs: folds of 2, 2 and 1).
FOLDS = 3
#: A fold model's epochs at most (the fine-tune's own when fewer): the check's cost cap.
FOLD_EPOCHS = 10
#: Validation pairs a fold model keeps aside to choose its best epoch (the fine-tune's three
#: would leave a fold model of five pairs nothing to train on).
LEAST_FOLD_VAL = 1
FOLDS_DIR = "folds"  # in the run folder: folds/<i>/ is fold i's training run
FOLD_JSON = "fold.json"  # in folds/<i>/ once its model finished: the fold's record


def plan_folds(names: Sequence[str], seed: int = 0) -> list[list[str]]:
    """``names`` dealt into :data:`FOLDS` folds (seeded, reproducible) when there are from
    :data:`MIN_PAIRS` to ``KFOLD_BELOW - 1`` of them; else none (``[]``)."""
    names = sorted(names)
    if not MIN_PAIRS <= len(names) < KFOLD_BELOW:
        return []
    order = random.Random(seed).sample(names, len(names))
    return [sorted(order[i::FOLDS]) for i in range(FOLDS)]


def fold_epochs(epochs: int) -> int:
    return max(1, min(int(epochs), FOLD_EPOCHS))


def cost_text(pairs: int, epochs: int) -> str:
    """What the check costs, in the user's words, for ``pairs`` pairs and the fine-tune's
    ``epochs``."""
    fewest, most = pairs - math.ceil(pairs / FOLDS), pairs - pairs // FOLDS
    size = f"{fewest}" if fewest == most else f"{fewest}-{most}"
    return (
        f"with {pairs} pairs the new model trains on all of them and is judged by a "
        f"{FOLDS}-fold check: {FOLDS} more fine-tunes of {fold_epochs(epochs)} epoch(s) on "
        f"{size} pairs each, after this one"
    )


def fold_dir(run_dir: str | Path, fold: int) -> Path:
    return Path(run_dir) / FOLDS_DIR / str(fold)


def fold_model(run_dir: str | Path, fold: int) -> Path | None:
    """Fold ``fold``'s model (its best checkpoint's weights), or None when it did not finish
    (stopped: a fold model trained for fewer epochs is no fair figure)."""
    from wavegms.store.catalogue import model_paths

    folder = fold_dir(run_dir, fold)
    weights = model_paths(folder / "best")[0]
    return weights if (folder / FOLD_JSON).is_file() and weights.is_file() else None


class _FoldProgress:
    """A fold's training reports as one bar over the whole check (stage ``kfold``)."""

    def __init__(self, progress: ProgressCallback | None, fold: int, epochs: int) -> None:
        self.progress, self.fold, self.epochs = progress, fold, epochs

    def __call__(self, report: Progress) -> None:
        if self.progress is None or report.stage != "epoch":
            return
        message = (
            f"{FOLDS}-fold check: fold model {self.fold + 1} of {FOLDS}, epoch {report.done} "
            f"of {self.epochs}"
        )
        done = self.fold * self.epochs + report.done
        self.progress(Progress("kfold", done, FOLDS * self.epochs, message))


def _copy_pairs(root: Path, names: Sequence[str], dest: Path) -> Path:
    for folder in ("images", "masks"):
        (dest / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(root / folder / f"{name}.png", dest / folder / f"{name}.png")
    return dest


def train_folds(
    request: FinetuneRequest,
    folds: Sequence[Sequence[str]],
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> int:
    """One model per fold, fine-tuned like ``request`` (whose ``data_dir`` holds every pair)
    on the pairs outside the fold, into :func:`fold_dir`; returns how many folds have a model
    (fewer when stopped)."""
    from wavegms.core.devices import resolve_device
    from wavegms.store.catalogue import resolve_model
    from wavegms.training.finetune import train_config
    from wavegms.training.trainer import train

    root, epochs = Path(request.data_dir), fold_epochs(request.epochs)
    base, device = resolve_model(request.base_model), str(resolve_device(request.device))
    everyone = [name for fold in folds for name in fold]
    for i, fold in enumerate(folds):
        if cancel is not None and cancel.cancelled:
            return i
        folder = fold_dir(request.out_dir, i)
        pairs = _copy_pairs(root, [n for n in everyone if n not in fold], folder / "pairs")
        fold_request = replace(request, data_dir=str(pairs), out_dir=str(folder), epochs=epochs)
        config = train_config(fold_request, base, device, LEAST_FOLD_VAL)
        result = train(config, _FoldProgress(progress, i, epochs), cancel)
        if result.cancelled or result.best_model is None:
            return i
        record = {"scored_on": list(fold), "epochs": epochs, "best_epoch": result.best_epoch}
        write_json(folder / FOLD_JSON, record)
    return len(folds)
