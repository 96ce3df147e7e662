"""Box mode's default pair of models (busi-box's crops, busi's whole image): what its masks
are, what their records say, and that a resume with either model alone is refused."""

from __future__ import annotations

import numpy as np

from box_pair import install_pair, records, scan_folder

from .cases import case


def segment(*args: str) -> int:
    from wavegms.cli import main

    return main(["segment", *args, "--device", "cpu", "--backend", "eager", "--format", "png"])


@case(
    "RUN-BOX-PAIR",
    "`wavegms segment IN OUT --box ...` with no model named (busi-box and busi installed), "
    "then `--resume` into OUT with busi-box alone and with busi alone",
    "Each crop is averaged with busi's whole-image soft mask (the labels equal "
    "segment_boxes(busi-box, whole=busi)); results.csv and the mask PNG record model "
    "busi-box+busi, both weights digests joined with +, the backend and fp32; both resumes "
    "are refused with exit code 2 naming busi-box+busi, and the masks stay as they were",
)
def test_the_cli_default_averages_with_busi_records_both_and_refuses_other_resumes(
    tmp_path, tiny_model_file, capsys
):
    from wavegms.data.images import read_image
    from wavegms.inference.boxes import segment_boxes
    from wavegms.inference.segmenter import Segmenter

    pair = install_pair(tiny_model_file)
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
