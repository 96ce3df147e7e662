"""Box mode's two models: which model segments the crops and which the whole image
(``catalogue.box_models``), the CLI's ``--whole-model``, and what the records say of both."""

from __future__ import annotations

import pytest

from box_pair import install, install_pair, records, scan_folder
from wavegms.store.catalogue import NO_WHOLE, BoxModels, box_models


@pytest.fixture
def pair(tiny_model_file) -> dict[str, str]:
    return install_pair(tiny_model_file)


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
