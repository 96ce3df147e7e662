"""Images without signal and headers that lie: a folder run flags the first instead of drawing
a confident mask, and checks the second against the file's size before reading any plane."""

from __future__ import annotations

import csv
import gzip
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from skimage.io import imsave

from clinical_files import write_dicom, write_nifti
from wavegms.core.errors import ImageReadError
from wavegms.data.images import read_image
from wavegms.data.intensities import NO_SIGNAL_SHARE, no_signal
from wavegms.inference.folder import segment_folder

from .cases import case

pytest.importorskip("pydicom")
pytest.importorskip("nibabel")


def table(out: Path) -> dict[str, dict]:
    with (out / "results.csv").open(newline="", encoding="utf-8") as f:
        return {row["name"]: row for row in csv.DictReader(f) if row["file"]}


def good_image(folder: Path) -> None:
    rng = np.random.default_rng(1)
    imsave(folder / "good.png", rng.integers(0, 255, (24, 28), np.uint8), check_contrast=False)


# Images without signal, in every dtype a reader gives: constant, all alike but a few pixels
# (at most NO_SIGNAL_SHARE of them), no finite value at all.
DTYPES = st.sampled_from([np.uint8, np.uint16, np.int16, np.float32, np.float64, bool])


@st.composite
def blank_images(draw) -> np.ndarray:
    height, width = draw(st.integers(8, 60)), draw(st.integers(8, 60))
    dtype = draw(DTYPES)
    colour = draw(st.booleans())
    shape = (height, width, 3) if colour else (height, width)
    kind = draw(st.sampled_from(["constant", "a few differ", "no finite value"]))
    if kind == "no finite value" and np.dtype(dtype).kind != "f":
        dtype = np.float32
    base = draw(st.integers(0, 1)) if dtype is bool else draw(st.integers(0, 250))
    image = np.full(shape, base, dtype)
    if kind == "no finite value":
        image[...] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    elif kind == "a few differ":
        allowed = int(NO_SIGNAL_SHARE * height * width)
        for _ in range(draw(st.integers(0, allowed))):
            r, c = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
            image[r, c] = not base if dtype is bool else base + 3
    return image


@case(
    "IMG-NO-SIGNAL-ANY",
    "Generated images without signal in every dtype a reader gives (uint8, uint16, int16, "
    "float32, float64, bool), grey and colour, 8 to 60 pixels a side: constant, all alike "
    "but up to 0.1 % of pixels, no finite value (NaN, +inf, -inf)",
    "no_signal names each of them (the check a folder run flags images by)",
)
@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(image=blank_images())
def test_every_blank_image_is_found(image):
    assert no_signal(image) is not None


@case(
    "IMG-SIGNAL-KEPT",
    "Generated images with a picture (a tenth of the pixels differ from the rest) in every "
    "dtype, with a stray pixel at a random place",
    "no_signal finds nothing: they are segmented as before",
)
@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 2**32 - 1), dtype=DTYPES)
def test_images_with_a_picture_are_not_flagged(seed, dtype):
    """A picture: at least a fraction more than NO_SIGNAL_SHARE of its pixels differ."""
    rng = np.random.default_rng(seed)
    image = np.zeros((40, 50), dtype)
    image[10:20, 10:30] = 1 if dtype is bool else 200  # 200 of 2000 pixels
    image[rng.integers(0, 40), rng.integers(0, 50)] = 0
    assert no_signal(image) is None


@case(
    "IMG-NO-SIGNAL",
    "A folder of images without signal beside a good one: a constant 16-bit PNG, a PNG whose "
    "pixels are all equal but one, an all-NaN NIfTI slice, a DICOM blank after its window, a "
    "DICOM whose WindowCenter is NaN (issue 23: masks of 27 %, 24 % and 100 %, exit 0)",
    "No mask for the blank images: each is listed as skipped ('no signal: ...; not "
    "segmented') and has a results.csv row whose note says so, with no mask area; the good "
    "image and the DICOM (shown without its unusable window) are segmented",
)
def test_images_without_signal_are_flagged(segmenter, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    good_image(src)
    imsave(src / "flat16.png", np.full((40, 50), 700, np.uint16), check_contrast=False)
    one = np.zeros((60, 70), np.uint8)
    one[5, 5] = 255
    imsave(src / "one.png", one, check_contrast=False)
    volume = np.random.default_rng(0).random((20, 24, 2)).astype(np.float32)
    volume[:, :, 1] = np.nan
    write_nifti(src / "vol.nii", volume, (1.0, 1.0, 2.0))
    pixels = np.random.default_rng(2).integers(0, 4000, (30, 30), np.uint16)
    write_dicom(src / "win.dcm", pixels, window=(float("nan"), 400.0))
    write_dicom(src / "dark.dcm", pixels, window=(90000.0, 10.0), uid="1.2.6.1")  # all black
    report = segment_folder(segmenter, src, tmp_path / "out")
    rows = table(tmp_path / "out")
    blank = {"flat16", "one", "vol_z0001", "1.2.6.1_f0001"}
    for name in blank:
        assert rows[name]["note"].startswith("no signal") and rows[name]["mask_area"] == ""
        assert not (tmp_path / "out" / "masks" / f"{name}.png").exists()
    dicom = "1.2.826.0.1.3680043.2.1125.1_f0001"
    assert {n for n, r in rows.items() if not r["note"]} == {"good", "vol_z0000", dicom}
    assert len(report.masks) == 3 and len(report.skipped) == 4
    assert all("no signal" in why for _, why in report.skipped)


@case(
    "FILE-DICOM-RESCALE-ZERO",
    "DICOMs whose RescaleSlope is 0 or NaN (every pixel one value), in a batch",
    "Skipped with 'its RescaleSlope is 0, which maps every pixel to one value', named; the "
    "other images are segmented (was: a 100 % mask, exit 0)",
)
def test_dicom_rescale_slope_zero(segmenter, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    good_image(src)
    pixels = np.random.default_rng(2).integers(0, 4000, (30, 30), np.uint16)
    write_dicom(src / "zero.dcm", pixels, rescale=(0.0, 5.0), uid="1.2.3.1")
    write_dicom(src / "nan.dcm", pixels, rescale=(float("nan"), 5.0), uid="1.2.3.2")
    report = segment_folder(segmenter, src, tmp_path / "out")
    reasons = dict(report.skipped)
    assert "RescaleSlope is 0" in reasons["zero.dcm"]
    assert "RescaleSlope is nan" in reasons["nan.dcm"]
    assert [p.name for p in report.masks] == ["good.png"]


@case(
    "FILE-HEADER-LIES",
    "Headers declaring more than the file holds: DICOMs with NumberOfFrames -3, 0 and 5,000 "
    "(holding one), NIfTI files (.nii and .nii.gz) of 265 KB or less declaring 64x64x30000 "
    "and 30000x30000x30000 voxels, in one batch with a good image",
    "Each file is one skipped item, its reason naming the declared size and the file's size "
    "(or the bad frame count), found from the header before any plane is read; the good image "
    "is segmented; the run takes seconds (was: frames dropped in silence, 4,999 numpy errors "
    "for one file, 40 minutes over 60,000 slices with nothing written)",
)
def test_headers_are_checked_against_the_file_size(segmenter, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    good_image(src)
    pixels = np.random.default_rng(3).integers(0, 4000, (32, 32), np.uint16)
    for n, frames in enumerate((-3, 0, 5000)):
        write_dicom(src / f"frames{frames}.dcm", pixels, uid=f"1.2.4.{n}", NumberOfFrames=frames)
    write_nifti(src / "vol.nii", np.zeros((64, 64, 5), np.float32), (1.0, 1.0, 1.0))
    raw = bytearray((src / "vol.nii").read_bytes())
    (src / "vol.nii").unlink()
    for name, dims in (("long", (64, 64, 30000)), ("cube", (30000, 30000, 30000))):
        raw[40:56] = struct.pack("<8h", 3, *dims, 1, 1, 1, 1)
        (src / f"{name}.nii").write_bytes(bytes(raw))
        (src / f"{name}gz.nii.gz").write_bytes(gzip.compress(bytes(raw)))
    start = time.monotonic()
    report = segment_folder(segmenter, src, tmp_path / "out")
    assert time.monotonic() - start < 60
    reasons = dict(report.skipped)
    assert len(report.skipped) == 7, report.skipped
    assert "NumberOfFrames is '-3'" in reasons["frames-3.dcm"]
    assert "NumberOfFrames is '0'" in reasons["frames0.dcm"]
    assert "5000 frame(s)" in reasons["frames5000.dcm"] and "the file has" in reasons[
        "frames5000.dcm"]  # fmt: skip
    for name in ("long.nii", "longgz.nii.gz", "cube.nii", "cubegz.nii.gz"):
        assert "voxels" in reasons[name] and "holds at most" in reasons[name], reasons[name]
    assert [p.name for p in report.masks] == ["good.png"]


@case(
    "FILE-ANIMATED-PNG",
    "An animated PNG (3 frames) in a batch and given to read_image",
    "ImageReadError 'an animation of 3 frames, which is not read (like GIF)'; the batch lists "
    "it as skipped and segments the rest (was: its first frame segmented without a word)",
)
def test_animated_png_is_refused(segmenter, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    good_image(src)
    frames = [Image.fromarray(np.full((20, 20), 60 * i, np.uint8)) for i in range(3)]
    frames[0].save(src / "anim.png", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageReadError, match="animation of 3 frames"):
        read_image(src / "anim.png")
    report = segment_folder(segmenter, src, tmp_path / "out")
    assert "animation" in dict(report.skipped)["anim.png"]
    assert [p.name for p in report.masks] == ["good.png"]


@case(
    "FILE-DICOM-SHARED-UID",
    "Two DICOM files sharing one SOPInstanceUID (a copy, a scanner reusing UIDs) in a batch",
    "Both segmented, their masks named <UID>_<file name>_f0001.png so that neither is written "
    "over (was: the whole folder refused with 'rename one of them', which cannot help)",
)
def test_dicoms_sharing_a_uid_are_both_segmented(segmenter, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(4)
    for name in ("a.dcm", "b.dcm"):
        write_dicom(src / name, rng.integers(0, 4000, (30, 30), np.uint16), uid="1.2.5.9")
    write_dicom(src / "c.dcm", rng.integers(0, 4000, (30, 30), np.uint16), uid="1.2.5.10")
    report = segment_folder(segmenter, src, tmp_path / "out")
    names = sorted(p.name for p in report.masks)
    assert names == ["1.2.5.10_f0001.png", "1.2.5.9_a.dcm_f0001.png", "1.2.5.9_b.dcm_f0001.png"]
    assert not report.skipped
