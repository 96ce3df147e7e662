"""The correction loop without a GUI: uncertainty, the review order, accept, skip, fine-tune
now and segmenting the images not yet reviewed again."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wavegms.cli import main
from wavegms.core.errors import InputError, WaveGMSError
from wavegms.data.images import read_image
from wavegms.data.masks import read_mask
from wavegms.inference.folder import run_folder
from wavegms.inference.folder_items import folder_items
from wavegms.inference.review import REVIEW_JSON, ReviewSession, read_results, review_order
from wavegms.scoring.uncertainty import band_share, region_entropy, uncertainty
from wavegms.training.finetune import MIN_PAIRS, FinetuneRequest
from wavegms.training.training_set import TrainingSet


def test_uncertainty_is_the_hesitant_share_of_the_predicted_region():
    soft = np.zeros((10, 10), np.float32)
    soft[:4] = 1.0  # 40 sure pixels
    assert band_share(soft) == 0.0
    soft[4] = 0.5  # 10 hesitant ones
    assert band_share(soft) == pytest.approx(10 / 50)
    assert uncertainty(soft) == band_share(soft)
    assert band_share(np.zeros((5, 5))) == 1.0  # nothing found: check it first
    assert band_share((soft * 255).round().astype(np.uint8)) == pytest.approx(10 / 50)
    assert region_entropy(np.full((4, 4), 0.5)) == pytest.approx(1.0, abs=1e-3)
    rng = np.random.default_rng(0)
    noisy = rng.random((30, 40)).astype(np.float32)
    as_png = np.round(noisy * 255).astype(np.uint8)  # as write_png stores a soft mask
    assert uncertainty(noisy) == uncertainty(as_png)  # a resumed run reads the same number
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        uncertainty(np.full((4, 4), np.nan))
    with pytest.raises(InputError, match="2D"):
        uncertainty(np.zeros((2, 4, 4)))


@pytest.fixture
def segmented(tiny_dataset, segmenter, tmp_path):
    """The tiny dataset's images segmented (unscored) into tmp/out."""
    out = tmp_path / "out"
    run_folder(segmenter, folder_items(tiny_dataset / "images"), out)
    return out


def test_results_carry_the_uncertainty_and_rank_orders_by_it(segmented, capsys):
    rows = read_results(segmented)
    assert len(rows) == 8
    for row in rows:
        soft = read_image(segmented / "soft" / f"{row['name']}.png")
        assert 0.0 <= row["uncertainty"] <= 1.0
        assert row["uncertainty"] == pytest.approx(uncertainty(soft), abs=0.02)
    order = review_order(rows)
    by_name = {r["name"]: r["uncertainty"] for r in rows}
    assert sorted(order) == sorted(by_name)
    assert [by_name[n] for n in order] == sorted(by_name.values(), reverse=True)
    assert main(["rank", str(segmented)]) == 0
    printed = [line.split()[-1] for line in capsys.readouterr().out.splitlines()]
    assert printed == order


def test_accept_and_skip_move_on_and_are_kept(segmented, tiny_dataset, tiny_model_file, capsys):
    session = ReviewSession.open(segmented, tiny_dataset / "images", "tiny", project="p")
    order = session.pending()
    first = session.next()
    assert first == order[0]
    corrected = np.zeros((40, 48), np.uint8)
    corrected[5:20, 10:30] = 1
    session.accept(first, corrected)
    pairs = TrainingSet("p")
    assert [e.source for e in pairs.entries()] == [first]
    assert np.array_equal(read_mask(pairs.masks_dir / f"{pairs.names()[0]}.png"), corrected > 0)
    assert np.array_equal(read_mask(segmented / "masks" / f"{first}.png"), corrected > 0)
    assert session.next() == order[1]
    session.skip(order[1])
    assert session.pending() == order[2:]
    session.accept(first, corrected)  # again: idempotent, nothing added
    assert len(TrainingSet("p").names()) == 1
    with pytest.raises(InputError, match="is not an image"):
        session.skip("no-such-image")
    again = ReviewSession.open(segmented)  # taken up from review.json
    assert again.pending() == order[2:]
    assert json.loads((segmented / REVIEW_JSON).read_text())["accepted"] == [first]
    assert main(["rank", str(segmented)]) == 0
    assert [line.split()[-1] for line in capsys.readouterr().out.splitlines()[:-1]] == order[2:]


def test_a_new_review_needs_its_images_and_model(segmented, tiny_dataset):
    with pytest.raises(InputError, match="no review yet"):
        ReviewSession.open(segmented)
    with pytest.raises(WaveGMSError, match="no model named or at 'nosuch'"):
        ReviewSession.open(segmented, tiny_dataset / "images", "nosuch")
    with pytest.raises(InputError, match="not a folder"):
        ReviewSession.open(segmented, tiny_dataset / "absent", "nosuch")
    assert not (segmented / REVIEW_JSON).exists()


def test_rank_refuses_a_folder_without_a_sound_table(tmp_path, capsys):
    assert main(["rank", str(tmp_path)]) == 2
    assert "no results.csv" in capsys.readouterr().err
    (tmp_path / "results.csv").write_text(
        "name,file,height,width,mask_area,uncertainty\na,a.png,4,4,x,0.5\n"
    )
    assert main(["rank", str(tmp_path)]) == 2
    assert "line 2: mask_area is no number: 'x'" in capsys.readouterr().err


def test_finetune_now_then_the_rest_is_segmented_again(
    segmented, tiny_dataset, tiny_model_file, monkeypatch
):
    from wavegms.inference import adoption

    # The k-fold check stopped before its fold models (tests/test_cross_validation.py runs
    # it): no figures, the user decides.
    monkeypatch.setattr(adoption, "train_folds", lambda *args, **kwargs: 0)
    session = ReviewSession.open(segmented, tiny_dataset / "images", "tiny", project="p")
    with pytest.raises(InputError, match=f"at least {MIN_PAIRS}"):
        session.finetune_request()
    accepted = session.pending()[:MIN_PAIRS]
    for name in accepted:
        session.accept(name, read_mask(tiny_dataset / "masks" / f"{name}.png"))
    kept = {n: (segmented / "soft" / f"{n}.png").read_bytes() for n in accepted}
    before = {r["name"]: r for r in read_results(segmented)}
    template = FinetuneRequest("", "", "", device="cpu", epochs=1, batch_size=2)
    outcome, comparison = session.finetune_now(template)
    assert comparison.verdict.name == "UNDECIDED" and comparison.folds == 3  # the user decides
    assert outcome.best_model is not None and session.state.model == "tiny"
    new = session.adopt()
    assert session.state.model == new
    assert new != "tiny" and session.state.models == [new]
    assert json.loads((segmented / REVIEW_JSON).read_text())["model"] == new
    report = session.resegment(device="cpu")
    assert report.written == 8 - MIN_PAIRS  # the images not reviewed
    rows = {r["name"]: r for r in read_results(segmented)}
    assert list(rows) == list(before)  # every image stays in the table, in its order
    for name in accepted:  # reviewed: untouched
        assert rows[name] == before[name]
        assert (segmented / "soft" / f"{name}.png").read_bytes() == kept[name]
    from wavegms.inference.segmenter import Segmenter

    fresh = Segmenter.load(new, device="cpu", backend="eager")  # no tracing: a faster test
    for name in session.pending():  # not reviewed: the new model's masks
        image = read_image(tiny_dataset / "images" / f"{name}.png")
        soft = np.round(fresh.segment(image)[1] * 255)
        written = read_image(segmented / "soft" / f"{name}.png").astype(np.float32)
        assert np.abs(written - soft).max() <= 1


def test_a_scored_review_keeps_every_row_in_the_table_and_summary(
    tiny_dataset, tiny_model_file, segmenter, tmp_path
):
    from wavegms.data.pairs import find_pairs
    from wavegms.inference.folder_items import pair_items

    images, masks, out = tiny_dataset / "images", tiny_dataset / "masks", tmp_path / "scored"
    run_folder(segmenter, pair_items(find_pairs(images, masks)), out)
    session = ReviewSession.open(out, images, "tiny", project="p", gt_dir=masks)
    first, second = session.pending()[:2]
    session.accept(first)
    session.skip(second)
    report = session.resegment(segmenter=segmenter)
    assert report.written == 6 and report.scored
    rows = read_results(out)
    assert len(rows) == 8 and all("dsc_native" in r for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == 8
    mean = np.mean([r["dsc_native"] for r in rows])
    assert summary["summary"]["dsc_native"]["mean"] == pytest.approx(mean, abs=1e-4)
    assert (out / "results.csv").read_text().count("\nmean,") == 1
