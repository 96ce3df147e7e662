"""The correction loop never makes results worse in silence and never loses a pair (issue 25),
without a GUI: adoption only when better, idempotent and atomic Accept, versioned masks,
reserved model names, and a table that says what the masks are."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest

from wavegms.core.errors import InputError
from wavegms.data.masks import read_mask
from wavegms.inference import adoption
from wavegms.inference.adoption import MIN_HELD_OUT, Verdict, decide, hold_out
from wavegms.inference.folder import run_folder
from wavegms.inference.folder_items import folder_items
from wavegms.inference.review import ReviewSession, read_results
from wavegms.store import reservations
from wavegms.store.reservations import check_new_model_name
from wavegms.training.finetune import MIN_PAIRS, FinetuneRequest
from wavegms.training.training_set import TrainingSet


def test_a_model_is_better_only_when_better_on_the_mean_and_on_most_held_out_pairs():
    assert decide([70.0, 60.0, 50.0], [71.0, 61.0, 50.0]) is Verdict.BETTER
    assert decide([70.0, 60.0, 50.0], [70.0, 60.0, 50.0]) is Verdict.NOT_BETTER  # a tie
    assert decide([87.4] * 5, [76.9] * 5) is Verdict.NOT_BETTER  # issue 25's case
    # a mean carried by one pair, worse on two of three: not better
    assert decide([80.0, 80.0, 10.0], [79.0, 79.0, 90.0]) is Verdict.NOT_BETTER
    assert decide([10.0] * (MIN_HELD_OUT - 1), [90.0] * (MIN_HELD_OUT - 1)) is Verdict.UNDECIDED
    assert decide(None, None) is Verdict.UNDECIDED
    with pytest.raises(InputError, match="not a percentage"):
        decide([float("nan"), 1.0, 2.0], [50.0, 1.0, 2.0])


def test_hold_out_sets_a_share_aside_only_when_enough_pairs_are_left():
    few = [f"p{i}" for i in range(MIN_PAIRS + 1)]
    assert hold_out(few).held_out == [] and hold_out(few).train == sorted(few)
    many = [f"p{i:02d}" for i in range(12)]
    split = hold_out(many)
    assert len(split.held_out) == MIN_HELD_OUT  # max(3, round(0.2 * 12))
    assert sorted(split.train + split.held_out) == sorted(many)
    assert not set(split.train) & set(split.held_out)
    assert hold_out(list(reversed(many))) == split  # reproducible


@pytest.fixture
def segmented(tiny_dataset, segmenter, tmp_path):
    out = tmp_path / "out"
    run_folder(segmenter, folder_items(tiny_dataset / "images"), out)
    return out


@pytest.fixture
def session(segmented, tiny_dataset, tiny_model_file):
    return ReviewSession.open(segmented, tiny_dataset / "images", "tiny", project="p")


def _mask(seed: int) -> np.ndarray:
    m = np.zeros((40, 48), np.uint8)
    m[5 + seed : 20 + seed, 10:30] = 1
    return m


def _agree(project: str) -> None:
    """The manifest and the files of a training set agree: every pair listed has both files,
    and no file is unlisted."""
    pairs = TrainingSet(project)
    listed = {f"{n}.png" for n in pairs.names()}
    for folder in (pairs.images_dir, pairs.masks_dir):
        assert {p.name for p in folder.iterdir() if not p.name.startswith(".")} == listed


def test_accept_twice_and_after_skip_changes_nothing_more(session, segmented):
    first, second = session.pending()[:2]
    entry = session.accept(first, _mask(0))
    assert session.accept(first, _mask(0)) == entry  # the same mask again: no change
    assert TrainingSet("p").names() == [entry.name]
    _agree("p")
    session.skip(second)
    session.accept(second, _mask(1))  # Accept after Skip
    assert session.state.accepted == [first, second] and session.state.skipped == []
    changed = session.accept(first, _mask(3))  # corrected again: the pair's mask is replaced
    assert changed.name == entry.name and len(TrainingSet("p").names()) == 2
    assert np.array_equal(read_mask(TrainingSet("p").masks_dir / f"{entry.name}.png"), _mask(3))
    _agree("p")
    session.restore(first)  # the output mask before the last Accept comes back
    assert np.array_equal(session.mask(first), _mask(0) > 0)


def test_accepts_at_once_and_during_a_snapshot_keep_the_manifest_and_files_agreeing(
    session, tmp_path
):
    names = session.pending()[:6]
    errors = []

    def accept(name, seed):
        try:
            session.accept(name, _mask(seed))
        except Exception as err:
            errors.append(err)

    threads = [threading.Thread(target=accept, args=(names[0], 2)) for _ in range(3)]
    threads += [threading.Thread(target=accept, args=(n, i)) for i, n in enumerate(names[1:])]
    for t in threads:
        t.start()
    snaps = []
    while any(t.is_alive() for t in threads):
        pairs = TrainingSet("p")
        snap = pairs.snapshot(pairs.names(), tmp_path / f"snap{len(snaps)}")
        snaps.append(snap)
    for t in threads:
        t.join()
    assert errors == []
    assert len(TrainingSet("p").names()) == 6
    _agree("p")
    for snap in snaps:  # every snapshot holds whole pairs
        images = {p.name for p in (snap / "images").glob("*.png")}
        assert images == {p.name for p in (snap / "masks").glob("*.png")}


def test_the_table_says_what_an_accepted_mask_is(
    tiny_dataset, segmenter, tiny_model_file, tmp_path
):
    from wavegms.data.pairs import find_pairs
    from wavegms.inference.folder_items import pair_items

    images, masks, out = tiny_dataset / "images", tiny_dataset / "masks", tmp_path / "scored"
    run_folder(segmenter, pair_items(find_pairs(images, masks)), out)
    session = ReviewSession.open(out, images, "tiny", project="p", gt_dir=masks)
    name = session.pending()[0]
    truth = read_mask(masks / f"{name}.png")
    session.accept(name, truth)
    row = {r["name"]: r for r in read_results(out)}[name]
    assert row["dsc_native"] == pytest.approx(100.0) and row["mask_area"] == truth.sum()
    summary = json.loads((out / "summary.json").read_text())
    mean = np.mean([r["dsc_native"] for r in read_results(out)])
    assert summary["summary"]["dsc_native"]["mean"] == pytest.approx(mean, abs=1e-4)


def test_segmenting_again_keeps_reviewed_and_edited_masks_and_can_be_undone(
    session, segmented, segmenter
):
    accepted, edited = session.pending()[:2]
    session.accept(accepted, _mask(0))
    session.mark_edited(edited)
    before = {p.name: p.read_bytes() for p in (segmented / "masks").glob("*.png")}
    rows_before = read_results(segmented)
    session.resegment(segmenter=_Empty(segmenter))  # a "new model" whose masks all differ
    after = {p.name: p.read_bytes() for p in (segmented / "masks").glob("*.png")}
    assert after[f"{accepted}.png"] == before[f"{accepted}.png"]
    assert after[f"{edited}.png"] == before[f"{edited}.png"]
    replaced = session.versions.last_batch().names
    assert set(replaced) == set(session.pending()) - {edited}
    assert session.undo_last_replace() == replaced
    assert {p.name: p.read_bytes() for p in (segmented / "masks").glob("*.png")} == before
    assert read_results(segmented) == rows_before


class _Empty:
    """A segmenter that finds nothing in any image (a 'new model' for the test)."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def predict_soft(self, inputs):
        return np.zeros((len(inputs), self.real.image_size, self.real.image_size), np.float32)


def _finished_folds(request, folds, progress=None, cancel=None) -> int:
    """The k-fold check's fold models as files (their weights are never read here)."""
    from wavegms.inference.cross_validation import FOLD_JSON, fold_dir

    for i in range(len(folds)):
        fold_dir(request.out_dir, i).mkdir(parents=True)
        (fold_dir(request.out_dir, i) / "best.safetensors").write_bytes(b"")
        (fold_dir(request.out_dir, i) / FOLD_JSON).write_text("{}")
    return len(folds)


def test_a_worse_model_is_not_adopted_nor_installed(session, monkeypatch):
    for name in session.pending()[: MIN_PAIRS + MIN_HELD_OUT]:
        session.accept(name, _mask(1))
    figures = {"tiny": 80.0}  # the current model; any other (the candidate) scores 60

    def scores(model, root, names, *args, **kwargs):
        return [figures.get(str(model), 60.0)] * len(names)

    monkeypatch.setattr(adoption, "pair_dsc", scores)
    monkeypatch.setattr(adoption, "train_folds", _finished_folds)  # scores are faked anyway
    template = FinetuneRequest("", "", "", device="cpu", epochs=1, batch_size=2)
    outcome, comparison = session.finetune_now(template)
    # 8 pairs: the new model trains on all of them, judged by the k-fold check
    assert comparison.verdict is Verdict.NOT_BETTER and comparison.held_out == 8
    assert comparison.folds == 3
    assert (comparison.current_dsc, comparison.candidate_dsc) == (80.0, 60.0)
    assert session.state.model == "tiny" and session.state.candidate == ""
    assert outcome.best_model is not None and outcome.installed is None
    with pytest.raises(Exception, match="no model named"):
        from wavegms.store.catalogue import resolve_model

        resolve_model(comparison.candidate)  # never installed
    assert reservations.open_runs() == []  # decided: the name is free again


def test_held_out_scores_are_real_dice(session, segmented, tiny_dataset):
    """pair_dsc scores a model's own masks as 100."""
    name = session.pending()[0]
    session.accept(name, session.mask(name))
    root = TrainingSet("p").root
    entry = TrainingSet("p").names()[0]
    assert adoption.pair_dsc("tiny", root, [entry], device="cpu") == [pytest.approx(100.0)]


def test_a_reserved_name_survives_a_restart_and_is_never_taken(tmp_path):
    run = tmp_path / "runs" / "finetune-mine"
    held = reservations.reserve_name("mine", run)
    assert held.state == reservations.RUNNING and held.alive
    assert reservations.reserve_name("mine", run) is not None  # the same run: again is fine
    with pytest.raises(InputError, match="reserved by a fine-tune"):
        check_new_model_name("mine")  # a second run, or napari after a restart
    with pytest.raises(InputError, match="reserved"):
        reservations.reserve_name("mine", tmp_path / "runs" / "other")
    assert check_new_model_name("mine", reserved_by=run).name == "mine"  # its own run
    # A restart: the process that held it is gone; the name stays held and is listed.
    path = reservations.reservation_path("mine")
    record = json.loads(path.read_text())
    dead = os.getpid() + 1
    while reservations.pid_alive(dead):
        dead += 1
    path.write_text(json.dumps({**record, "pid": dead}))
    (listed,) = reservations.open_runs()
    assert listed.name == "mine" and not listed.alive and "ended without" in listed.describe()
    with pytest.raises(InputError, match="reserved"):
        check_new_model_name("mine")
    reservations.mark_finished("mine", {"best_val_dice": "0.8"})
    assert "not reviewed" in reservations.open_runs()[0].describe()
    reservations.release_name("mine")
    assert reservations.open_runs() == [] and check_new_model_name("mine").name == "mine"
