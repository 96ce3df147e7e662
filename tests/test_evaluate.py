"""The folder pipeline with ground truth (what `wavegms evaluate` runs), with fake predictors
on small synthetic PNGs."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import skimage.io
from skimage.transform import resize

from wavegms.core.errors import InputError, OutputExistsError
from wavegms.core.progress import CancelToken
from wavegms.data.preprocess import resize_soft
from wavegms.inference.folder import run_folder
from wavegms.inference.folder_items import pair_items
from wavegms.inference.folder_outputs import IMAGE_COLUMNS, FolderReport
from wavegms.scoring.metrics import HD95_CONVENTION
from wavegms.scoring.scores import SCORE_KEYS

SIZE = 32  # fake model size; small so the tests stay fast


@dataclass(frozen=True)
class FakePair:
    """Same fields as wavegms.data.pairs.Pair (duck-typed by pair_items)."""

    name: str
    image: Path
    mask: Path


class ChannelPredictor:
    """Soft mask = the red channel of the model input (exact for images of the model size)."""

    image_size = SIZE

    def __init__(self) -> None:
        self.calls = 0

    def predict_soft(self, images: list[np.ndarray]) -> np.ndarray:
        self.calls += 1
        out = [
            resize(im[..., 0], (SIZE, SIZE), order=0, anti_aliasing=False, preserve_range=True)
            for im in images
        ]
        return np.stack(out).astype(np.float32)


class EmptyPredictor(ChannelPredictor):
    def predict_soft(self, images: list[np.ndarray]) -> np.ndarray:
        self.calls += 1
        return np.zeros((len(images), SIZE, SIZE), np.float32)


def disk_mask(h: int, w: int, frac: float = 0.3) -> np.ndarray:
    rr, cc = np.mgrid[:h, :w]
    r = frac * min(h, w)
    return (rr - h / 2 + 0.5) ** 2 + (cc - w / 2 + 0.5) ** 2 <= r * r


def make_pairs(root: Path, shapes: list[tuple[int, int]]) -> list[FakePair]:
    """RGB images whose red channel encodes the mask (0.1 outside, 0.9 inside), plus masks."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    pairs = []
    for i, (h, w) in enumerate(shapes):
        m = disk_mask(h, w, frac=0.2 + 0.05 * i)
        img = np.zeros((h, w, 3), np.uint8)
        img[..., 0] = np.where(m, 230, 25)
        img[..., 1] = 100
        img[..., 2] = 50
        ip, mp = root / "images" / f"img{i}.png", root / "masks" / f"img{i}.png"
        skimage.io.imsave(ip, img, check_contrast=False)
        skimage.io.imsave(mp, (m * 255).astype(np.uint8), check_contrast=False)
        pairs.append(FakePair(f"img{i}", ip, mp))
    return pairs


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --- resize_soft -------------------------------------------------------------------------


def test_resize_soft_shapes_and_range():
    rng = np.random.default_rng(0)
    soft = rng.random((SIZE, SIZE)).astype(np.float32)
    for shape in [(64, 48), (20, 17), (SIZE, SIZE)]:
        out = resize_soft(soft, shape)
        assert out.shape == shape
        assert out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
    # Constant stays constant (preserve_range, no rescaling).
    assert np.allclose(resize_soft(np.full((8, 8), 0.7, np.float32), (30, 30)), 0.7)
    # Identity size returns a copy, not a view.
    same = resize_soft(soft, soft.shape)
    same[0, 0] = -1
    assert soft[0, 0] != -1


def test_resize_soft_is_bilinear_when_upsampling():
    soft = np.zeros((2, 2), np.float32)
    soft[:, 1] = 1.0
    out = resize_soft(soft, (2, 8))
    row = out[0]
    assert np.all(np.diff(row) >= 0)  # monotone ramp, no overshoot from smoothing
    assert 0 < row[3] < 1 and row[0] == 0 and row[-1] == 1


def test_resize_soft_rejects_non_2d():
    with pytest.raises(InputError):
        resize_soft(np.zeros((2, 4, 4)), (8, 8))


# --- the pipeline with ground truth ------------------------------------------------------


def evaluate(predictor, pairs, out: Path, **options) -> FolderReport:
    return run_folder(predictor, pair_items(pairs), out, **options)


def test_perfect_predictor_at_model_size(tmp_path):
    pairs = make_pairs(tmp_path / "data", [(SIZE, SIZE)] * 3)
    out = tmp_path / "out"
    pred = ChannelPredictor()
    result = evaluate(pred, pairs, out, batch_size=2)

    assert isinstance(result, FolderReport) and result.scored
    assert pred.calls == 2  # batches of 2 + 1
    assert [r["name"] for r in result.rows] == ["img0", "img1", "img2"]
    for r in result.rows:
        assert r["dsc_224"] == 100.0 and r["iou_224"] == 100.0 and r["hd95_224"] == 0.0
        assert r["dsc_native"] == 100.0 and r["iou_native"] == 100.0
        assert r["hd95_native"] == 0.0
    assert result.scores["dsc_224"] == (100.0, 0.0)
    assert result.scores["hd95_native"] == (0.0, 0.0)

    rows = read_csv(out / "results.csv")
    assert list(rows[0].keys()) == [*IMAGE_COLUMNS, *SCORE_KEYS]
    assert [r["name"] for r in rows] == ["img0", "img1", "img2", "mean", "std"]
    assert float(rows[3]["dsc_224"]) == 100.0 and float(rows[4]["dsc_224"]) == 0.0
    assert float(rows[3]["hd95_native"]) == 0.0

    for p in pairs:
        gt = skimage.io.imread(p.mask) > 0
        binary = skimage.io.imread(out / "masks" / f"{p.name}.png")
        assert binary.shape == gt.shape and binary.dtype == np.uint8
        assert set(np.unique(binary)) <= {0, 255}
        assert np.array_equal(binary == 255, gt)
        soft = skimage.io.imread(out / "soft" / f"{p.name}.png")
        assert soft.shape == gt.shape and soft.dtype == np.uint8
        # Soft values are the red channel: ~0.9 inside, ~0.1 outside.
        assert soft[gt].min() > 200 and soft[~gt].max() < 50


def test_native_sizes_and_summary_rows(tmp_path):
    shapes = [(48, 40), (20, 28), (64, 64), (33, 31)]
    pairs = make_pairs(tmp_path / "data", shapes)
    out = tmp_path / "out"
    result = evaluate(ChannelPredictor(), pairs, out, batch_size=3)

    for r, (h, w) in zip(result.rows, shapes, strict=True):
        assert (r["height"], r["width"]) == (h, w)
        # The model input is the image resized bilinearly, the ground truth at model size
        # nearest: they differ only along the boundary.
        assert 85.0 < r["dsc_224"] <= 100.0 and r["hd95_224"] <= 2.0
        # Native: bilinear upsampling of a 32x32 mask; close but not exact.
        assert 85.0 < r["dsc_native"] <= 100.0
        assert 0 <= r["iou_native"] <= r["dsc_native"]
        assert r["hd95_native"] < 4.0
        assert r["mask_area"] > 0
        assert skimage.io.imread(out / "masks" / f"{r['name']}.png").shape == (h, w)
        assert skimage.io.imread(out / "soft" / f"{r['name']}.png").shape == (h, w)

    rows = read_csv(out / "results.csv")
    per_image, mean_row, std_row = rows[:-2], rows[-2], rows[-1]
    assert mean_row["name"] == "mean" and std_row["name"] == "std"
    assert mean_row["height"] == "" and std_row["width"] == "" and mean_row["file"] == ""
    for key in ["dsc_native", "iou_native", "hd95_native", "mask_area"]:
        values = np.array([float(r[key]) for r in per_image])
        assert float(mean_row[key]) == pytest.approx(values.mean(), abs=1e-5)
        assert float(std_row[key]) == pytest.approx(values.std(ddof=0), abs=1e-5)
        assert result.scores[key][0] == pytest.approx(values.mean(), abs=1e-5)


def test_empty_predictor_hd95_is_diagonal(tmp_path):
    shapes = [(40, 30), (24, 50)]
    pairs = make_pairs(tmp_path / "data", shapes)
    out = tmp_path / "out"
    result = evaluate(EmptyPredictor(), pairs, out)
    for r, (h, w) in zip(result.rows, shapes, strict=True):
        assert r["dsc_224"] == 0.0 and r["dsc_native"] == 0.0 and r["iou_native"] == 0.0
        assert r["hd95_224"] == pytest.approx(SIZE * math.sqrt(2))
        assert r["hd95_native"] == pytest.approx(math.hypot(h, w))
        assert r["mask_area"] == 0
        assert not skimage.io.imread(out / "masks" / f"{r['name']}.png").any()
    rows = read_csv(out / "results.csv")
    assert float(rows[0]["hd95_native"]) == pytest.approx(50.0, abs=1e-5)


def test_summary_json_and_text(tmp_path):
    pairs = make_pairs(tmp_path / "data", [(SIZE, SIZE), (40, 36)])
    out = tmp_path / "out"
    result = evaluate(ChannelPredictor(), pairs, out, threshold=0.4)
    meta = json.loads((out / "summary.json").read_text())
    assert meta["hd95_convention"] == HD95_CONVENTION
    assert meta["threshold"] == 0.4 and meta["complete"] is True
    assert "ddof=0" in meta["std_definition"]
    assert meta["n_images"] == 2 and meta["model_size"] == SIZE
    assert meta["summary"]["dsc_224"]["mean"] == pytest.approx(result.scores["dsc_224"][0])
    assert meta["summary"]["dsc_native"]["std"] == pytest.approx(result.scores["dsc_native"][1])
    text = result.summary()
    assert HD95_CONVENTION in text and f"{SIZE}x{SIZE}" in text
    assert "scores over 2 image(s)" in text and "±" in text and "DSC" in text and "HD95" in text
    assert result.csv_path == out / "results.csv" and result.summary_path == out / "summary.json"


def test_refuses_to_overwrite_before_any_work(tmp_path):
    pairs = make_pairs(tmp_path / "data", [(SIZE, SIZE)] * 2)
    out = tmp_path / "out"
    evaluate(ChannelPredictor(), pairs, out)
    before = (out / "results.csv").read_bytes()

    pred = ChannelPredictor()
    with pytest.raises(OutputExistsError):
        evaluate(pred, pairs, out)
    assert pred.calls == 0
    assert (out / "results.csv").read_bytes() == before

    # A single leftover mask is enough to refuse, also before any work.
    fresh = tmp_path / "fresh"
    (fresh / "masks").mkdir(parents=True)
    (fresh / "masks" / "img1.png").write_bytes(b"x")
    with pytest.raises(OutputExistsError, match="img1"):
        evaluate(pred, pairs, fresh)
    assert pred.calls == 0 and not (fresh / "soft").exists()

    # overwrite=True replaces everything.
    result = evaluate(EmptyPredictor(), pairs, out, overwrite=True)
    assert result.rows[0]["dsc_224"] == 0.0
    assert float(read_csv(out / "results.csv")[0]["dsc_224"]) == 0.0
    assert not skimage.io.imread(out / "masks" / "img0.png").any()


def test_outputs_never_go_into_the_folders_read(tmp_path):
    pairs = make_pairs(tmp_path / "data", [(SIZE, SIZE)] * 2)
    masks_before = {p: p.read_bytes() for p in (tmp_path / "data" / "masks").iterdir()}
    pred = ChannelPredictor()
    # OUT/masks would be the ground-truth folder; OUT would be the images' folder.
    for out in (tmp_path / "data", tmp_path / "data" / "images"):
        with pytest.raises(InputError, match="differ"):
            evaluate(pred, pairs, out, overwrite=True)
    assert pred.calls == 0
    assert {p: p.read_bytes() for p in (tmp_path / "data" / "masks").iterdir()} == masks_before


def test_progress_and_cancel(tmp_path):
    pairs = make_pairs(tmp_path / "data", [(SIZE, SIZE)] * 5)
    reports = []
    evaluate(ChannelPredictor(), pairs, tmp_path / "all", batch_size=2, progress=reports.append)
    assert all(p.stage == "evaluate" and p.total == 5 for p in reports)
    done = [p.done for p in reports]
    assert done[0] == 0 and done[-1] == 5 and done == sorted(done)

    token = CancelToken()

    def cancel_after_first_batch(p) -> None:
        if p.done >= 2:
            token.cancel()

    out = tmp_path / "out"
    pred = ChannelPredictor()
    result = evaluate(
        pred, pairs, out, batch_size=2, progress=cancel_after_first_batch, cancel=token
    )
    assert result.cancelled and pred.calls == 1
    # What was scored is kept, and said to be incomplete.
    assert [r["name"] for r in read_csv(out / "results.csv")] == ["img0", "img1", "mean", "std"]
    assert json.loads((out / "summary.json").read_text())["complete"] is False
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["img0.png", "img1.png"]
    assert result.summary().startswith("cancelled after 2 of 5")


def test_input_errors(tmp_path):
    pairs = make_pairs(tmp_path / "data", [(SIZE, SIZE), (20, 20)])
    out = tmp_path / "out"
    with pytest.raises(InputError):
        evaluate(ChannelPredictor(), [], out)
    with pytest.raises(InputError, match="same mask"):
        evaluate(ChannelPredictor(), [pairs[0], pairs[0]], out)
    # Image and mask of different sizes.
    bad = FakePair("bad", pairs[0].image, pairs[1].mask)
    with pytest.raises(InputError, match="differ in size"):
        evaluate(ChannelPredictor(), [bad], out, skip_unreadable=False)

    class WrongShape(ChannelPredictor):
        def predict_soft(self, images):
            return np.zeros((len(images), SIZE + 1, SIZE), np.float32)

    with pytest.raises(InputError, match="shape"):
        evaluate(WrongShape(), pairs, out, overwrite=True)
    with pytest.raises(InputError, match="threshold"):
        evaluate(ChannelPredictor(), pairs, out, threshold=1.5)


def test_import_does_not_load_torch_or_model():
    code = (
        "import sys, wavegms.inference.folder, wavegms.scoring.scores; "
        "bad = [m for m in ('torch', 'wavegms.net.model') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unreadable_pairs_end_the_run_or_are_skipped(tmp_path):
    pairs = make_pairs(tmp_path / "data", [(SIZE, SIZE)] * 3)
    Path(pairs[1].image).write_bytes(b"truncated")
    with pytest.raises(InputError, match="img1"):
        evaluate(ChannelPredictor(), pairs, tmp_path / "strict", skip_unreadable=False)
    result = evaluate(ChannelPredictor(), pairs, tmp_path / "out")
    assert [r["name"] for r in result.rows] == ["img0", "img2"]
    assert [name for name, _ in result.skipped] == [Path(pairs[1].image).name]
    assert [r["name"] for r in read_csv(tmp_path / "out" / "results.csv")][:2] == ["img0", "img2"]
    assert "1 file(s) skipped" in result.summary()
    for p in pairs:
        Path(p.image).write_bytes(b"")
    with pytest.raises(InputError, match="none of the 3 images"):
        evaluate(ChannelPredictor(), pairs, tmp_path / "none")
