"""What made each mask: results.csv and the mask PNGs record model, backend, precision,
threshold and input; ``--resume`` keeps a mask only when all of these still hold."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.io import imsave

from wavegms.cli import main
from wavegms.inference.folder_records import RECORD_COLUMNS, read_png_record
from wavegms.runtime.backends import precision_of

from .cases import case

MODEL = ["--model", "tiny", "--device", "cpu"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def table(out: Path) -> dict[str, dict]:
    with (out / "results.csv").open(newline="", encoding="utf-8") as f:
        return {row["name"]: row for row in csv.DictReader(f) if row["file"]}


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        imsave(folder / f"c{i}.png", rng.integers(0, 255, (30 + i, 40), np.uint8))
    return folder


def segment(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["segment", *argv])
    return code, capsys.readouterr().err


@case(
    "RUN-PROVENANCE",
    "`wavegms segment IN OUT` with a user model; the table and the masks are read back",
    "Every results.csv row and every mask PNG (a text chunk) record the model's name and the "
    "sha256 of its weights file, the backend that ran and its precision (fp32; int8 only for "
    "the int8 backend), the threshold, and the sha256 of the input file",
)
def test_rows_and_masks_record_what_made_them(images, tiny_model_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert segment(capsys, str(images), str(out), *MODEL, "--threshold", "0.25")[0] == 0
    rows = table(out)
    assert sorted(rows) == ["c0", "c1", "c2"]
    for name, row in rows.items():
        assert row["model"] == "tiny" and row["model_sha256"] == sha256(tiny_model_file)
        assert row["backend"] in ("onnx", "traced", "eager") and row["precision"] == "fp32"
        assert float(row["threshold"]) == 0.25
        assert row["input_sha256"] == sha256(images / f"{name}.png")
        record = read_png_record(out / "masks" / f"{name}.png")
        assert record is not None and {k: str(record[k]) for k in RECORD_COLUMNS} == {
            **{k: row[k] for k in RECORD_COLUMNS}, "threshold": "0.25"}  # fmt: skip
    assert [precision_of(b) for b in ("int8", "onnx", "openvino", "traced", "eager")] == [
        "int8", *["fp32"] * 4]  # fmt: skip


@case(
    "RUN-RESUME-OTHER-MODEL",
    "`--resume` into a folder made by another model, or at another threshold (one mask "
    "removed as if the run had been killed)",
    "Exit 2, one line naming the model and threshold the masks were made with and those of "
    "this run, and what to do; no file of the folder changes (was: old and new masks mixed in "
    "one results.csv that recorded neither)",
)
def test_resume_with_another_model_or_threshold_is_refused(
    images, tiny_model_file, tmp_path, capsys
):
    import torch

    from wavegms.net.model import ModelConfig, WaveGMS
    from wavegms.store.model_files import save_model

    torch.manual_seed(1)
    save_model(WaveGMS(ModelConfig(image_size=32)), tiny_model_file.parent / "other")
    out = tmp_path / "out"
    assert segment(capsys, str(images), str(out), *MODEL)[0] == 0
    (out / "masks" / "c2.png").unlink()
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for change in (["--model", "other"], ["--threshold", "0.4"]):
        argv = [str(images), str(out), *MODEL, *change, "--resume"]
        code, err = segment(capsys, *argv)
        assert code == 2 and err.count("\n") == 1 and err.startswith("error: cannot resume")
        assert "made by model tiny" in err and "threshold 0.5" in err, err
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert segment(capsys, str(images), str(out), *MODEL, "--resume")[0] == 0
    assert (out / "masks" / "c2.png").is_file() and len(table(out)) == 3


@case(
    "RUN-RESUME-REPLACED-INPUT",
    "`--resume` after an input image was replaced by another (of another size) since its mask "
    "was made",
    "The replaced image is segmented again: its mask has the new image's size and its row the "
    "new file's sha256; the others are kept byte for byte (was: the old 695x810 mask kept for "
    "a 469x554 image)",
)
def test_resume_redoes_a_replaced_input(images, tiny_model_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert segment(capsys, str(images), str(out), *MODEL)[0] == 0
    kept = (out / "masks" / "c0.png").read_bytes()
    new = np.random.default_rng(5).integers(0, 255, (47, 55), np.uint8)
    imsave(images / "c1.png", new, check_contrast=False)
    assert segment(capsys, str(images), str(out), *MODEL, "--resume")[0] == 0
    rows = table(out)
    assert (rows["c1"]["height"], rows["c1"]["width"]) == ("47", "55")
    assert rows["c1"]["input_sha256"] == sha256(images / "c1.png")
    assert np.asarray(Image.open(out / "masks" / "c1.png")).shape == (47, 55)
    assert (out / "masks" / "c0.png").read_bytes() == kept


@case(
    "CLI-OUTPUTS-EXIST",
    "The same `wavegms segment IN OUT` run twice; `wavegms evaluate` twice into one --out",
    "Exit 2, one line that names the existing outputs and the options that help: "
    "--overwrite or --resume for segment, --overwrite for evaluate (was: library words)",
)
def test_existing_outputs_name_the_options(images, tiny_dataset, tiny_model_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert segment(capsys, str(images), str(out), *MODEL)[0] == 0
    code, err = segment(capsys, str(images), str(out), *MODEL)
    assert code == 2 and err.count("\n") == 1
    assert "already exist" in err and "--overwrite" in err and "--resume" in err
    evaluate = ["evaluate", "--data", str(tiny_dataset), "--out", str(tmp_path / "ev"), *MODEL]
    assert main(evaluate) == 0
    capsys.readouterr()
    assert main(evaluate) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "--resume" not in err and err.count("\n") == 1
