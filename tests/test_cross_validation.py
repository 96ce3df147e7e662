"""The k-fold check of a fine-tune made from few accepted pairs (issue 25): the new model
trains on every pair, fold models fine-tuned without each fold score it, and the verdict uses
every out-of-fold score. Qt-free, tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wavegms.core.files import write_json
from wavegms.core.progress import CancelToken, Progress
from wavegms.inference import adoption
from wavegms.inference.adoption import HOLD_OUT_JSON, Verdict, hold_out, judge_run
from wavegms.inference.cross_validation import (
    FOLD_EPOCHS,
    FOLDS,
    KFOLD_BELOW,
    cost_text,
    fold_dir,
    plan_folds,
    train_folds,
)
from wavegms.training.finetune import MIN_PAIRS, FinetuneRequest


@pytest.mark.parametrize("count", range(MIN_PAIRS, KFOLD_BELOW))
def test_few_pairs_are_dealt_into_folds_that_each_leave_enough_to_train(count):
    names = [f"p{i}" for i in range(count)]
    folds = plan_folds(names)
    assert len(folds) == FOLDS
    dealt = [n for fold in folds for n in fold]
    assert sorted(dealt) == sorted(names) and len(set(dealt)) == count  # each pair once
    assert all(count - len(fold) >= 3 for fold in folds)  # 1 validates, 2 train at least
    assert plan_folds(list(reversed(names))) == folds  # reproducible
    split = hold_out(names)  # nothing held out: the offered model trains on every pair
    assert split.held_out == [] and split.train == sorted(names) and split.folds == folds


def test_outside_the_few_pairs_range_there_is_no_k_fold():
    assert plan_folds([f"p{i}" for i in range(MIN_PAIRS - 1)]) == []
    many = [f"p{i:02d}" for i in range(KFOLD_BELOW)]
    assert plan_folds(many) == []
    split = hold_out(many)
    assert len(split.held_out) == 3 and split.folds == []


def test_the_cost_is_said_with_the_epochs_capped():
    text = cost_text(7, 20)
    assert f"{FOLDS}-fold check" in text and f"{FOLDS} more fine-tunes" in text
    assert f"of {FOLD_EPOCHS} epoch(s) on 4-5 pairs each" in text  # 7 pairs: folds of 3, 2, 2
    assert "of 2 epoch(s)" in cost_text(6, 2) and "on 4 pairs each" in cost_text(6, 2)


def _fake_run(run_dir, folds, finished):
    """A run folder as the k-fold check leaves it: each finished fold with its record."""
    write_json(run_dir / HOLD_OUT_JSON, {"project": "p", "train": [], "held_out": [],
                                        "folds": folds})  # fmt: skip
    for i in range(len(folds)):
        folder = fold_dir(run_dir, i)
        folder.mkdir(parents=True)
        (folder / "best.safetensors").write_bytes(b"weights")
        if i < finished:
            write_json(folder / "fold.json", {"scored_on": folds[i]})


@pytest.mark.parametrize(
    ("fold_scores", "verdict"),
    [
        ((70.0, 70.0, 70.0), Verdict.BETTER),  # better on every fold
        ((70.0, 70.0, 10.0), Verdict.NOT_BETTER),  # a worse fold pulls the mean below
        ((99.0, 59.0, 59.0), Verdict.NOT_BETTER),  # better mean, but loses on most pairs
    ],
)
def test_the_verdict_uses_every_out_of_fold_score(tmp_path, monkeypatch, fold_scores, verdict):
    folds = [["a", "b"], ["c", "d"], ["e"]]
    _fake_run(tmp_path, folds, finished=3)
    scored = []

    def scores(model, root, names, *args, **kwargs):
        scored.append((str(model), list(names)))
        if model == "current":
            return [60.0] * len(names)
        fold = int(model.parent.name)  # folds/<i>/best.safetensors
        return [fold_scores[fold]] * len(names)

    monkeypatch.setattr(adoption, "pair_dsc", scores)
    comparison = judge_run("current", tmp_path, "new")
    assert comparison.verdict is verdict
    assert comparison.folds == FOLDS and comparison.held_out == 5
    assert scored[0] == ("current", ["a", "b", "c", "d", "e"])
    assert [names for _, names in scored[1:]] == folds  # each fold model on its own fold only
    expected = np.mean([fold_scores[0]] * 2 + [fold_scores[1]] * 2 + [fold_scores[2]])
    assert comparison.candidate_dsc == pytest.approx(expected)
    assert comparison.current_dsc == pytest.approx(60.0)
    assert "3-fold check on all 5 accepted pairs" in comparison.text()


def test_a_stopped_check_leaves_the_choice_to_the_user(tmp_path, monkeypatch):
    _fake_run(tmp_path, [["a", "b"], ["c", "d"], ["e"]], finished=2)
    monkeypatch.setattr(adoption, "pair_dsc", lambda *a, **k: pytest.fail("scored"))
    comparison = judge_run("current", tmp_path, "new")
    assert comparison.verdict is Verdict.UNDECIDED
    assert "stopped before every fold model was fine-tuned" in comparison.text()


def test_stop_before_the_folds_trains_none(tmp_path, tiny_model_file):
    token = CancelToken()
    token.cancel()
    request = FinetuneRequest(str(tmp_path), "tiny", "x", out_dir=str(tmp_path / "run"))
    assert train_folds(request, [["a"], ["b"], ["c"]], cancel=token) == 0
    assert not (tmp_path / "run" / "folds").exists()


def test_each_fold_model_trains_on_the_other_pairs_with_capped_epochs(
    tmp_path, tiny_dataset, tiny_model_file, monkeypatch
):
    from types import SimpleNamespace

    import wavegms.training.trainer as trainer

    configs = []

    def fake_train(config, progress=None, cancel=None):  # the trainer is tested on its own
        configs.append(config)
        for epoch in range(1, config.epochs + 1):
            progress(Progress("epoch", epoch, config.epochs))
        best = Path(config.out_dir) / "best.safetensors"
        best.write_bytes(b"weights")
        return SimpleNamespace(cancelled=False, best_model=best, best_epoch=1)

    monkeypatch.setattr(trainer, "train", fake_train)
    names = sorted(p.stem for p in (tiny_dataset / "images").glob("*.png"))[:7]
    folds = plan_folds(names)
    reports = []
    request = FinetuneRequest(str(tiny_dataset), "tiny", "x", out_dir=str(tmp_path / "run"),
                              device="cpu", epochs=20)  # fmt: skip
    assert train_folds(request, folds, progress=reports.append) == FOLDS
    for i, (fold, config) in enumerate(zip(folds, configs, strict=True)):
        seen = {p.stem for p in (Path(config.data_dir) / "images").glob("*.png")}
        assert seen == set(names) - set(fold)  # never the fold it is scored on
        assert config.epochs == FOLD_EPOCHS  # 20 asked: capped
        assert round(config.val_fraction * len(seen)) == 1  # one pair chooses the epoch
        assert (
            json.loads((fold_dir(request.out_dir, i) / "fold.json").read_text())["scored_on"]
            == fold
        )
    done = [(r.done, r.total) for r in reports if r.stage == "kfold"]
    assert done == [(k, FOLDS * FOLD_EPOCHS) for k in range(1, FOLDS * FOLD_EPOCHS + 1)]
