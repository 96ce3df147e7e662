"""Box mode's two models: which model segments the crops and which the whole image
(``catalogue.box_models``), the CLI's ``--whole-model``, and what the records say of both."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from skimage.io import imsave

from wavegms.inference.folder_records import PNG_KEY, digest
from wavegms.store.catalogue import NO_WHOLE, BoxModels, box_models
from wavegms.store.paths import user_models_dir


def install(name: str, source) -> None:
    """The model file ``source`` (``.safetensors`` beside its ``.json``) as user model
    ``name``."""
    for suffix in (".safetensors", ".json"):
        shutil.copyfile(source.with_suffix(suffix), user_models_dir() / f"{name}{suffix}")


@pytest.fixture
def pair(tiny_model_file):
    """``busi-box`` (the tiny model) and ``busi`` (another tiny model, other weights)
    installed as user models (the shipped ones are hidden from tests)."""
    import torch

    from wavegms.net.model import ModelConfig, WaveGMS
    from wavegms.store.model_files import save_model

    install("busi-box", tiny_model_file)
    torch.manual_seed(1)
    save_model(WaveGMS(ModelConfig(image_size=32)), user_models_dir() / "busi")
    return {n: digest(user_models_dir() / f"{n}.safetensors") for n in ("busi-box", "busi")}


def test_the_defaults_pair_busi_box_crops_with_busis_whole_image(tiny_model_file):
    assert box_models() == BoxModels("tiny", None)  # no crop-aware model: the default alone
    install("busi-box", tiny_model_file)
    assert box_models() == BoxModels("busi-box", None)  # no busi to pair it with
    install("busi", tiny_model_file)
    assert box_models() == BoxModels("busi-box", "busi")
    assert box_models(whole=NO_WHOLE) == BoxModels("busi-box", None)
    assert box_models("tiny") == BoxModels("tiny", None)  # a named model: its crops alone
    assert box_models("busi-box") == BoxModels("busi-box", None)
    assert box_models("tiny", "busi") == BoxModels("tiny", "busi")


def segment(*args: str) -> int:
    from wavegms.cli import main

    return main(["segment", *args, "--device", "cpu", "--backend", "eager", "--format", "png"])


def scan_folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    imsave(src / "scan.png", np.random.default_rng(3).integers(0, 255, (40, 48), dtype=np.uint8))
    return src


def records(out) -> tuple[dict, dict]:
    """The row of results.csv and the mask PNG's record of ``scan``."""
    from PIL import Image

    with open(out / "results.csv", newline="") as f:
        (row,) = csv.DictReader(f)
    with Image.open(out / "masks" / "scan.png") as im:
        return row, json.loads(im.text[PNG_KEY])


def test_the_cli_default_averages_with_busi_records_both_and_refuses_other_resumes(
    tmp_path, pair, capsys
):
    from wavegms.data.images import read_image
    from wavegms.inference.boxes import segment_boxes
    from wavegms.inference.segmenter import Segmenter

    src = scan_folder(tmp_path)
    assert segment(str(src), str(tmp_path / "b"), "--box", "6,5,30,28") == 0
    printed = capsys.readouterr().out
    assert (
        "masks by model busi-box" in printed and "whole image's soft mask by model busi" in printed
    )
    row, chunk = records(tmp_path / "b")
    joined = f"{pair['busi-box']}+{pair['busi']}"
    for made in (row, chunk):
        assert (made["model"], made["model_sha256"]) == ("busi-box+busi", joined)
        assert (made["backend"], made["precision"]) == ("eager", "fp32")
    crops, whole = (Segmenter.load(n, device="cpu", backend="eager") for n in pair)
    expected = segment_boxes(crops, read_image(src / "scan.png"), [(6, 5, 30, 28)], whole=whole)
    np.testing.assert_array_equal(
        read_image(tmp_path / "b" / "labels" / "scan.png"), expected.labels
    )
    capsys.readouterr()
    for model in ("busi-box", "busi"):  # a resume with either model alone is another run
        assert segment(str(src), str(tmp_path / "b"), "--resume", "--model", model) == 2
        err = capsys.readouterr().err
        assert "cannot resume" in err and "busi-box+busi" in err, err
    assert records(tmp_path / "b")[0]["model"] == "busi-box+busi"  # nothing replaced


@pytest.mark.parametrize(
    ("options", "model"),
    [
        (["--whole-model", NO_WHOLE], "busi-box"),
        (["--model", "busi-box"], "busi-box"),
        (["--model", "busi-box", "--whole-model", "busi"], "busi-box+busi"),
    ],
)
def test_named_models_and_none_are_what_the_records_say(tmp_path, pair, options, model):
    assert segment(str(scan_folder(tmp_path)), str(tmp_path / "o"), "--box", "6,5,30,28",
                   *options) == 0  # fmt: skip
    row, chunk = records(tmp_path / "o")
    assert row["model"] == chunk["model"] == model
    assert row["model_sha256"] == "+".join(pair[name] for name in model.split("+"))


def test_whole_model_without_boxes_is_a_one_line_error(tmp_path, pair, capsys):
    assert segment(str(scan_folder(tmp_path)), str(tmp_path / "o"), "--whole-model", "busi") == 2
    err = capsys.readouterr().err.strip()
    assert "--whole-model goes with box prompts" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()
