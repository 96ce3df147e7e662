"""The one folder pipeline, unscored: masks, soft masks and results.csv; junk skipped; nothing
overwritten; `wavegms segment`, `wavegms evaluate` and the batch panel's job agree."""

from __future__ import annotations

import copy
import csv
import json
import shutil

import numpy as np
import pytest
from skimage.io import imread, imsave

from wavegms.core.errors import InputError, OutputExistsError
from wavegms.core.progress import CancelToken
from wavegms.inference.folder import segment_folder
from wavegms.inference.folder_outputs import IMAGE_COLUMNS


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    imsave(src / "a.png", (np.random.default_rng(0).random((30, 40)) * 255).astype(np.uint8))
    imsave(src / "b.jpg", (np.random.default_rng(1).random((20, 25, 3)) * 255).astype(np.uint8))
    (src / "broken.png").write_text("not an image")
    (src / "notes.txt").write_text("ignored: not an image suffix")
    return src


def test_masks_soft_masks_and_table_for_every_readable_image(folder, tmp_path, segmenter):
    out = tmp_path / "out"
    segmenter.batch_size = 1
    report = segment_folder(segmenter, folder, out)
    assert [p.name for p in report.masks] == ["a.png", "b.png"]
    assert [name for name, _ in report.skipped] == ["broken.png"]
    mask = imread(out / "masks" / "a.png")
    assert mask.shape == (30, 40) and set(np.unique(mask)) <= {0, 255}
    soft = imread(out / "soft" / "b.png")
    assert soft.shape == (20, 25)
    rows = _rows(out / "results.csv")
    assert list(rows[0]) == list(IMAGE_COLUMNS)  # no score columns without ground truth
    assert not (out / "summary.json").exists()
    assert [(r["name"], r["file"], r["height"], r["width"]) for r in rows] == [
        ("a", "a.png", "30", "40"),
        ("b", "b.jpg", "20", "25"),
    ]
    assert int(rows[0]["mask_area"]) == int((mask > 0).sum())
    # The binary mask is the soft mask thresholded (soft PNG is 8-bit: allow its rounding).
    soft_b = soft / 255.0
    binary_b = imread(out / "masks" / "b.png") > 0
    clear = np.abs(soft_b - segmenter.threshold) > 1 / 255
    assert np.array_equal(binary_b[clear], (soft_b > segmenter.threshold)[clear])


def test_batching_does_not_change_the_masks(folder, tmp_path, segmenter, tiny_segmenter):
    segmenter.batch_size = 1
    one = segment_folder(segmenter, folder, tmp_path / "1")
    eight = copy.copy(tiny_segmenter)
    eight.batch_size = 8
    many = segment_folder(eight, folder, tmp_path / "8")
    for a, b in zip(one.masks, many.masks, strict=True):
        assert np.array_equal(imread(a), imread(b))


def test_existing_outputs_are_never_replaced_unless_asked(folder, tmp_path, segmenter):
    out = tmp_path / "out"
    segment_folder(segmenter, folder, out)
    before = (out / "masks" / "a.png").read_bytes()
    table = (out / "results.csv").read_bytes()
    with pytest.raises(OutputExistsError, match="already exist"):
        segment_folder(segmenter, folder, out)
    assert (out / "masks" / "a.png").read_bytes() == before
    assert (out / "results.csv").read_bytes() == table
    assert segment_folder(segmenter, folder, out, overwrite=True).written == 2


def test_images_sharing_a_name_are_refused_before_any_work(folder, tmp_path, segmenter):
    imsave(folder / "a.tif", np.zeros((8, 8), np.uint8))
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"a\.png and a\.tif"):
        segment_folder(segmenter, folder, out)
    assert not out.exists()


def test_output_inside_input_is_refused(folder, segmenter):
    with pytest.raises(InputError, match="differ"):
        segment_folder(segmenter, folder, folder)


def test_cancel_keeps_what_was_written_and_its_table(folder, tmp_path, segmenter):
    token = CancelToken()

    def cancel_after_first(progress) -> None:
        if progress.done >= 1:
            token.cancel()

    out = tmp_path / "out"
    segmenter.batch_size = 1
    report = segment_folder(segmenter, folder, out, progress=cancel_after_first, cancel=token)
    assert report.cancelled and [p.name for p in report.masks] == ["a.png"]
    assert [r["name"] for r in _rows(out / "results.csv")] == ["a"]


def test_a_killed_writers_temporary_files_are_cleared_and_nothing_else(folder, tmp_path, segmenter):
    """A writer killed mid-write (a dask worker) leaves ``.<name>.<hex>.tmp.png`` files behind;
    the run that holds the folder's lock clears them, and never a file of the user's."""
    out = tmp_path / "out"
    segment_folder(segmenter, folder, out)
    stale = out / "masks" / ".a.png.0123456789ab.tmp.png"
    stale.write_bytes(b"half a PNG")
    (out / "soft" / ".b.png.abcdef012345.tmp.png").write_bytes(b"")
    kept = out / "masks" / "my notes.tmp.png"  # not the temporary-file pattern
    kept.write_text("the user's")
    segment_folder(segmenter, folder, out, resume=True)
    assert not stale.exists() and kept.read_text() == "the user's"
    assert sorted(p.name for p in (out / "soft").iterdir()) == ["a.png", "b.png"]


def test_an_empty_folder_is_refused(tmp_path, segmenter):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        segment_folder(segmenter, tmp_path / "empty", tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_without_overlap_the_same_outputs(folder, tmp_path, segmenter):
    segmenter.batch_size = 2
    overlapped = segment_folder(segmenter, folder, tmp_path / "on")
    in_order = segment_folder(segmenter, folder, tmp_path / "off", overlap=False)
    assert overlapped.rows == in_order.rows and overlapped.skipped == in_order.skipped
    for a, b in zip(overlapped.masks, in_order.masks, strict=True):
        assert a.read_bytes() == b.read_bytes()
    assert (tmp_path / "on" / "results.csv").read_bytes() == (
        tmp_path / "off" / "results.csv"
    ).read_bytes()


def test_segment_evaluate_and_batch_job_agree(tiny_dataset, tmp_path, tiny_model_file):
    """The CLI's segment and evaluate and the batch panel's job are one pipeline: the same
    masks and, column for column, the same CSV rows for the same folder."""
    from wavegms.cli import main
    from wavegms.napari.jobs import ModelSlot, batch_job

    names = ["case_0", "case_3", "case_6"]  # three pairs keep the three runs quick
    data = tmp_path / "data3"
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
        for name in names:
            shutil.copyfile(tiny_dataset / sub / f"{name}.png", data / sub / f"{name}.png")
    (data / "split.json").write_text(json.dumps({"all": names}))
    model = ["--model", "tiny", "--device", "cpu"]
    assert main(["segment", str(data / "images"), str(tmp_path / "seg"), *model]) == 0
    evaluate = ["evaluate", "--data", str(data), "--split", "all"]
    assert main([*evaluate, "--out", str(tmp_path / "eval"), *model]) == 0
    job = batch_job(
        str(data / "images"), str(tmp_path / "job"), "tiny", "cpu", 0.5, ModelSlot(),
        gt_dir=str(data / "masks"),
    )  # fmt: skip
    assert job.written == len(names) and not job.skipped

    for name in names:
        first = (tmp_path / "seg" / "masks" / f"{name}.png").read_bytes()
        for run in ("eval", "job"):
            assert (tmp_path / run / "masks" / f"{name}.png").read_bytes() == first, run
    table = {run: _rows(tmp_path / run / "results.csv") for run in ("seg", "eval", "job")}
    assert table["eval"] == table["job"]
    assert [r["name"] for r in table["eval"]] == [*names, "mean", "std"]
    unscored = [{k: r[k] for k in IMAGE_COLUMNS} for r in table["eval"][: len(names)]]
    assert unscored == table["seg"]
    assert job.scores["dsc_native"][0] == pytest.approx(float(table["eval"][-2]["dsc_native"]))


def test_a_failed_run_leaves_no_lock_behind(folder, tmp_path):
    """The output folder's lock is removed however the run ends, so the next run may start."""
    from wavegms.core.lock import LOCK_NAME
    from wavegms.inference.folder import run_folder
    from wavegms.inference.folder_items import folder_items

    class WrongShape:
        image_size = 32

        def predict_soft(self, images):
            return np.zeros((len(images), 8, 8), np.float32)

    out = tmp_path / "out"
    with pytest.raises(InputError, match="returned shape"):
        run_folder(WrongShape(), folder_items(folder), out)
    assert not (out / LOCK_NAME).exists()
