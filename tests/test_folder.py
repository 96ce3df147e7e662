"""Segmenting a folder: masks, soft masks and results.csv; junk skipped; nothing overwritten."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from skimage.io import imread, imsave

from wavegms.core.errors import InputError, OutputExistsError
from wavegms.core.progress import CancelToken
from wavegms.inference.folder import segment_folder
from wavegms.inference.segmenter import Segmenter


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


def test_masks_soft_masks_and_table_for_every_readable_image(folder, tmp_path, tiny_model_file):
    out = tmp_path / "out"
    segmenter = Segmenter.load("tiny", device="cpu", batch_size=1)
    report = segment_folder(segmenter, folder, out)
    assert [p.name for p in report.written] == ["a.png", "b.png"]
    assert [p.name for p, _ in report.skipped] == ["broken.png"]
    mask = imread(out / "masks" / "a.png")
    assert mask.shape == (30, 40) and set(np.unique(mask)) <= {0, 255}
    soft = imread(out / "soft" / "b.png")
    assert soft.shape == (20, 25)
    rows = _rows(out / "results.csv")
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


def test_batching_does_not_change_the_masks(folder, tmp_path, tiny_model_file):
    one = segment_folder(Segmenter.load("tiny", device="cpu", batch_size=1), folder, tmp_path / "1")
    many = segment_folder(
        Segmenter.load("tiny", device="cpu", batch_size=8), folder, tmp_path / "8"
    )
    for a, b in zip(one.written, many.written, strict=True):
        assert np.array_equal(imread(a), imread(b))


def test_existing_outputs_are_never_replaced_unless_asked(folder, tmp_path, tiny_model_file):
    out = tmp_path / "out"
    segmenter = Segmenter.load("tiny", device="cpu")
    segment_folder(segmenter, folder, out)
    before = (out / "masks" / "a.png").read_bytes()
    table = (out / "results.csv").read_bytes()
    with pytest.raises(OutputExistsError, match="already exist"):
        segment_folder(segmenter, folder, out)
    assert (out / "masks" / "a.png").read_bytes() == before
    assert (out / "results.csv").read_bytes() == table
    assert len(segment_folder(segmenter, folder, out, overwrite=True).written) == 2


def test_images_sharing_a_name_are_refused_before_any_work(folder, tmp_path, tiny_model_file):
    imsave(folder / "a.tif", np.zeros((8, 8), np.uint8))
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"a\.png and a\.tif"):
        segment_folder(Segmenter.load("tiny", device="cpu"), folder, out)
    assert not out.exists()


def test_output_inside_input_is_refused(folder, tiny_model_file):
    with pytest.raises(InputError, match="differ"):
        segment_folder(Segmenter.load("tiny", device="cpu"), folder, folder)


def test_cancel_keeps_what_was_written_and_its_table(folder, tmp_path, tiny_model_file):
    token = CancelToken()

    def cancel_after_first(progress) -> None:
        if progress.done >= 1:
            token.cancel()

    out = tmp_path / "out"
    segmenter = Segmenter.load("tiny", device="cpu", batch_size=1)
    report = segment_folder(segmenter, folder, out, progress=cancel_after_first, cancel=token)
    assert report.cancelled and [p.name for p in report.written] == ["a.png"]
    assert [r["name"] for r in _rows(out / "results.csv")] == ["a"]
