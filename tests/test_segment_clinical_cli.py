"""``wavegms segment`` with boxes, --spacing and --format: every written NIfTI mask and DICOM
SEG read back against the PNG masks of the same run, and lesions.csv against them."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from clinical_files import write_dicom, write_nifti
from wavegms.data.images import read_image

UID = "1.2.826.0.1.3680043.2.1125.90"


def run(args: list[str]) -> int:
    from wavegms.cli import main

    return main(["segment", *args, "--model", "tiny", "--device", "cpu", "--backend", "eager"])


def clinical_folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(1)
    write_dicom(src / "us.dcm", rng.integers(0, 4000, (24, 30)).astype(np.uint16), uid=UID,
                spacing=(0.2, 0.1), StudyInstanceUID=UID + ".1", SeriesInstanceUID=UID + ".2",
                PatientID="P")  # fmt: skip
    write_nifti(src / "vol.nii.gz", rng.normal(size=(20, 26, 3)).astype(np.float32),
                (0.5, 0.25, 2.0))  # fmt: skip
    from skimage.io import imsave

    imsave(src / "photo.png", rng.integers(0, 255, (22, 28), dtype=np.uint8))
    return src


def test_box_run_writes_labels_lesions_nifti_and_seg(tmp_path, tiny_model_file, capsys):
    import nibabel as nib
    import pydicom

    src, out = clinical_folder(tmp_path), tmp_path / "out"
    code = run([str(src), str(out), "--box", "2,2,12,10", "--box", "14,8,22,18",
                "--box-keep", "crop", "--box-margin", "0.1", "--threshold", "0",
                "--spacing", "0.3"])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    names = ["photo", f"{UID}_f0001", "vol_z0000", "vol_z0001", "vol_z0002"]
    labels = {n: read_image(out / "labels" / f"{n}.png") for n in names}
    for name, lab in labels.items():  # threshold 0: each box's whole crop (margin 0.1)
        assert set(np.unique(lab)) == {0, 1, 2}, name
        assert (lab[1:11, 1:13] > 0).all() and lab[:, 24:].max() == 0
        np.testing.assert_array_equal(read_image(out / "masks" / f"{name}.png") > 0, lab > 0)
    volume = nib.load(out / "nifti" / "vol.nii.gz")
    np.testing.assert_allclose(volume.affine, nib.load(src / "vol.nii.gz").affine)
    stacked = np.stack([labels[f"vol_z000{k}"] for k in range(3)], axis=-1)
    np.testing.assert_array_equal(np.asarray(volume.dataobj), stacked)
    seg = pydicom.dcmread(out / "dicom" / "us_seg.dcm")
    ref = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert ref.ReferencedSOPInstanceUID == UID
    assert [s.SegmentNumber for s in seg.SegmentSequence] == [1, 2]
    frames = seg.pixel_array  # one frame per segment, in segment order
    np.testing.assert_array_equal(frames[0], labels[f"{UID}_f0001"] == 1)
    np.testing.assert_array_equal(frames[1], labels[f"{UID}_f0001"] == 2)
    with open(out / "lesions.csv", newline="") as f:
        lesions = list(csv.DictReader(f))
    assert {(r["name"], r["label"]) for r in lesions} == {(n, s) for n in names for s in "12"}
    by = {(r["name"], r["label"]): r for r in lesions}
    photo = by[("photo", "1")]  # --spacing fills in what the PNG does not say
    assert float(photo["area_mm2"]) == pytest.approx(int(photo["area_px"]) * 0.09)
    us = by[(f"{UID}_f0001", "1")]  # the DICOM keeps its own spacing
    assert (float(us["row_spacing_mm"]), float(us["col_spacing_mm"])) == (0.2, 0.1)
    assert int(us["area_px"]) == int((labels[f"{UID}_f0001"] == 1).sum())


def test_png_only_writes_no_source_geometry(tmp_path, tiny_model_file, capsys):
    src, out = clinical_folder(tmp_path), tmp_path / "out"
    assert run([str(src), str(out), "--format", "png"]) == 0
    assert not (out / "nifti").exists() and not (out / "dicom").exists()
    assert (out / "lesions.csv").is_file() and not (out / "labels").exists()


def test_a_boxes_file_picks_images_and_refuses_unknown_names(tmp_path, tiny_model_file, capsys):
    src, out = clinical_folder(tmp_path), tmp_path / "out"
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("image,x0,y0,x1,y1\nphoto.png,1,1,9,9\nvol_z0001,3,3,12,12\n")
    assert run([str(src), str(out), "--boxes", str(boxes), "--format", "png"]) == 0
    printed = capsys.readouterr().out
    assert sorted(p.stem for p in (out / "labels").glob("*.png")) == ["photo", "vol_z0001"]
    assert "vol_z0000: no box given for it" in printed
    boxes.write_text("photo.png,1,1,9,9\nnobody.png,1,1,5,5\n")
    assert run([str(src), str(tmp_path / "o2"), "--boxes", str(boxes)]) == 2
    assert "not in the input: nobody.png" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()  # refused before anything was written


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (["--box", "5,5,5,9"], "empty or inverted"),
        (["--box", "1,2,3"], "has 3 numbers"),
        (["--spacing", "0,1"], "positive"),
        (["--format", "jpeg"], "--format"),
        (["--box", "1,1,5,5", "--resume"], "without --resume"),
        (["--box-margin", "11"], "must lie in [0, 10]"),
    ],
)
def test_bad_clinical_options_are_one_line_errors(tmp_path, tiny_model_file, capsys, extra, why):
    src = clinical_folder(tmp_path)
    assert run([str(src), str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert why in err and len(err.splitlines()) == 1


def test_fractional_numbers_are_taken(tmp_path, tiny_model_file, capsys):
    """``--threshold 0.3`` and ``--box-margin 0.25`` (a float bound has no step: both were
    refused as 'not a multiple of 1')."""
    src, out = clinical_folder(tmp_path), tmp_path / "out"
    args = ["--box", "2,2,12,10", "--box-margin", "0.25", "--threshold", "0.3", "--format", "png"]
    assert run([str(src), str(out), *args]) == 0, capsys.readouterr().err
    assert (out / "labels" / "photo.png").is_file()


@pytest.mark.shipped
def test_boxes_without_a_model_run_the_crop_aware_one(tmp_path, capsys):
    """Box prompts run busi-box's crops averaged with busi's whole image unless a model is
    named (chosen on the BUSI validation images: 82.54 DSC, against 81.21 for busi-box's crops
    alone); whole images keep busi."""
    from skimage.io import imsave

    from wavegms.cli import main

    src = tmp_path / "in"
    src.mkdir()
    imsave(src / "scan.png", np.random.default_rng(2).integers(0, 255, (40, 48), dtype=np.uint8))
    common = ["--device", "cpu", "--backend", "eager", "--format", "png"]
    assert main(["segment", str(src), str(tmp_path / "b"), "--box", "4,4,30,30", *common]) == 0
    assert main(["segment", str(src), str(tmp_path / "w"), *common]) == 0
    for out, model in (("b", "busi-box+busi"), ("w", "busi")):
        with open(tmp_path / out / "results.csv", newline="") as f:
            assert {row["model"] for row in csv.DictReader(f)} == {model}, out
