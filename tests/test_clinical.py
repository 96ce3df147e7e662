"""DICOM and NIfTI files: decoded as viewers show them, spacing carried, segmented from the
CLI with one mask per frame or slice and the spacing in the table."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from clinical_files import write_dicom, write_nifti
from wavegms.core.errors import ImageReadError
from wavegms.data.clinical import read_header
from wavegms.data.images import page_count, read_image, scan_folder
from wavegms.data.masks import read_mask

UID = "1.2.826.0.1.3680043.2.1125.7"

#: stored values of two frames; with slope 2 and intercept -100 they are -100, 100, 300, 1900
#: (and 0, 100, 200, 300)
FRAMES = np.array([[[0, 100, 200, 1000]], [[50, 100, 150, 200]]], np.uint16)


def shown(value: float, centre: float = 100.0, width: float = 201.0) -> float:
    """A viewer's grey for a modality value in the window (PS3.3 C.11.2.1.2.1), in [0, 1]."""
    low, high = centre - 0.5 - (width - 1) / 2, centre - 0.5 + (width - 1) / 2
    if value <= low:
        return 0.0
    if value > high:
        return 1.0
    return (value - (centre - 0.5)) / (width - 1) + 0.5


def test_multi_frame_dicom_is_windowed_after_rescale(tmp_path):
    path = write_dicom(
        tmp_path / "cine.dcm", FRAMES, uid=UID, window=(100, 201), rescale=(2, -100),
        spacing=(0.5, 0.25),
    )  # fmt: skip
    assert page_count(path) == 2
    header = read_header(path)
    assert header.spacing == (0.5, 0.25) and header.uid == UID and header.planes == 2
    stack = read_image(path)
    assert stack.shape == (2, 1, 4) and stack.dtype == np.float32
    modality = FRAMES.astype(float) * 2 - 100
    expected = np.vectorize(shown)(modality)
    np.testing.assert_allclose(stack, expected, atol=1e-6)
    assert stack[0, 0, 1] == pytest.approx(0.5025)  # the window's centre is mid-grey
    np.testing.assert_array_equal(read_image(path, page=1), stack[1])
    with pytest.raises(ImageReadError, match="no plane 2"):
        read_image(path, page=2)
    import pydicom
    from pydicom.uid import RLELossless

    compressed = pydicom.dcmread(path)
    compressed.compress(RLELossless)  # encapsulated: each frame decoded on its own
    compressed.save_as(tmp_path / "rle.dcm")
    np.testing.assert_array_equal(read_image(tmp_path / "rle.dcm", page=1), stack[1])


def test_monochrome1_is_inverted_and_imager_spacing_carried(tmp_path):
    pixels = np.array([[0, 100, 200], [40, 99, 250]], np.uint16)
    path = write_dicom(
        tmp_path / "cr.dcm", pixels, photometric="MONOCHROME1", window=(100, 101),
        spacing=(0.15, 0.2), spacing_tag="ImagerPixelSpacing",
    )  # fmt: skip
    image = read_image(path)
    assert image.shape == (2, 3)
    expected = 1.0 - np.vectorize(shown)(pixels.astype(float), 100.0, 101.0)
    np.testing.assert_allclose(image, expected, atol=1e-6)
    assert image[0, 0] == 1.0 and image[0, 2] == 0.0  # MONOCHROME1: low values are white
    assert read_header(path).spacing == (0.15, 0.2)


def test_voi_lut_sequence_maps_values_through_its_table(tmp_path):
    from pydicom.dataset import Dataset

    lut = Dataset()  # 256 entries from stored value 100 on, 8 bits: a falling ramp
    lut.add_new(0x00283002, "US", [256, 100, 8])  # LUT Descriptor
    lut.add_new(0x00283006, "US", list(range(255, -1, -1)))  # LUT Data
    pixels = np.array([[0, 100, 200, 355, 3000]], np.uint16)
    path = write_dicom(tmp_path / "lut.dcm", pixels, VOILUTSequence=[lut])
    # below the table: its first entry; past its end: its last (not wrapped around)
    expected = np.array([[255, 255, 155, 0, 0]]) / 255
    np.testing.assert_allclose(read_image(path), expected, atol=1e-6)


def test_enhanced_multi_frame_spacing_and_window_from_functional_groups(tmp_path):
    from pydicom.dataset import Dataset

    measures, voi, shared = Dataset(), Dataset(), Dataset()
    measures.PixelSpacing = [0.4, 0.6]
    voi.WindowCenter, voi.WindowWidth = 100, 101
    shared.PixelMeasuresSequence, shared.FrameVOILUTSequence = [measures], [voi]
    path = write_dicom(tmp_path / "enhanced.dcm", FRAMES, SharedFunctionalGroupsSequence=[shared])
    assert read_header(path).spacing == (0.4, 0.6)
    expected = np.vectorize(shown)(FRAMES[1].astype(float), 100.0, 101.0)
    np.testing.assert_allclose(read_image(path, page=1), expected, atol=1e-6)
    assert read_image(path, page=1)[0, 3] == 1.0  # 200: above the window, white


def test_ybr_becomes_rgb_and_ultrasound_regions_give_spacing(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.pixels import convert_color_space

    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[1:3, 2:5] = (200, 40, 90)
    region = Dataset()
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3  # cm
    region.PhysicalDeltaX, region.PhysicalDeltaY = 0.02, 0.03
    path = write_dicom(
        tmp_path / "us.dcm", convert_color_space(rgb, "RGB", "YBR_FULL"),
        photometric="YBR_FULL", SequenceOfUltrasoundRegions=[region],
    )  # fmt: skip
    image = read_image(path)
    assert image.shape == (4, 6, 3)
    np.testing.assert_allclose(image * 255, rgb, atol=2)  # YBR rounding
    assert read_header(path).spacing == pytest.approx((0.3, 0.2))  # cm -> mm


def test_nifti_volume_slices_along_its_last_axis(tmp_path):
    volume = (np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5) * 10) - 100
    path = write_nifti(tmp_path / "ct.nii.gz", volume, (0.5, 0.8, 2.0))
    header = read_header(path)
    assert header.planes == 5 and (header.height, header.width) == (3, 4)
    assert header.spacing == (0.5, 0.8) and header.plane_spacing == 2.0  # as written
    lo, hi = volume.min(), volume.max()  # one contrast for the whole volume
    expected = (volume[:, :, 2] - lo) / (hi - lo)
    np.testing.assert_allclose(read_image(path, page=2), expected, atol=1e-6)
    stack = read_image(path)
    assert stack.shape == (5, 3, 4)
    np.testing.assert_allclose(stack[2], expected, atol=1e-6)


def test_clinical_files_are_listed_and_broken_ones_say_why(tmp_path):
    write_dicom(tmp_path / "IM0001", FRAMES[0], uid=UID)  # no suffix: found by its marker
    write_dicom(tmp_path / "1.2.840.77", FRAMES[0], uid=UID)  # named by a UID, likewise
    (tmp_path / "3.14").write_text("a number, no DICOM")
    (tmp_path / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"garbage")
    (tmp_path / "broken.nii").write_bytes(b"\0" * 40)
    (tmp_path / "README").write_text("not an image")
    names = [p.name for p in scan_folder(tmp_path).images]
    assert names == ["1.2.840.77", "IM0001", "broken.dcm", "broken.nii"]
    for name in ("broken.dcm", "broken.nii"):
        with pytest.raises(ImageReadError, match=f"cannot read image .*{name}") as err:
            read_image(tmp_path / name)
        assert "\n" not in str(err.value)


def test_missing_reader_library_names_the_extra(tmp_path, monkeypatch):
    import sys

    path = write_dicom(tmp_path / "a.dcm", FRAMES[0])
    monkeypatch.setitem(sys.modules, "pydicom", None)  # as if not installed
    with pytest.raises(ImageReadError, match=r"a\.dcm: .*napari-wavegms\[clinical\]"):
        read_image(path)


def test_cli_segments_dicom_frames_and_nifti_slices(tmp_path, tiny_model_file, capsys):
    from wavegms.cli import main

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rng = np.random.default_rng(0)
    cine = rng.integers(0, 4000, (3, 20, 24)).astype(np.uint16)
    write_dicom(src / "cine.dcm", cine, uid=UID, window=(2000, 4000), spacing=(0.5, 0.25))
    write_dicom(src / "cr.dcm", cine[0], uid=UID + "1", photometric="MONOCHROME1")
    write_nifti(src / "vol.nii.gz", rng.normal(size=(18, 22, 2)).astype(np.float32), (1.5, 2, 3))
    (src / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"garbage")
    assert main(["segment", str(src), str(out), "--model", "tiny", "--device", "cpu"]) == 0
    report = capsys.readouterr().out
    assert "broken.dcm: cannot read image" in report  # one line, not a crash or silence
    masks = sorted(p.name for p in (out / "masks").glob("*.png"))
    assert masks == sorted(
        [f"{UID}_f000{k}.png" for k in (1, 2, 3)] + [f"{UID}1_f0001.png"]
        + ["vol_z0000.png", "vol_z0001.png"]
    )  # fmt: skip
    with open(out / "results.csv", newline="") as f:
        rows = {row["name"]: row for row in csv.DictReader(f)}
    frame = rows[f"{UID}_f0002"]
    assert (frame["file"], frame["height"], frame["width"]) == ("cine.dcm", "20", "24")
    assert (float(frame["row_spacing_mm"]), float(frame["col_spacing_mm"])) == (0.5, 0.25)
    area = int(read_mask(out / "masks" / f"{UID}_f0002.png").sum())
    assert int(frame["mask_area"]) == area
    assert float(frame["mask_area_mm2"]) == pytest.approx(area * 0.125)
    assert rows[f"{UID}1_f0001"]["mask_area_mm2"] == ""  # no spacing in the file: no mm²
    assert float(rows["vol_z0001"]["mask_area_mm2"]) == pytest.approx(
        int(rows["vol_z0001"]["mask_area"]) * 3.0
    )
    assert read_mask(out / "masks" / "vol_z0000.png").shape == (18, 22)
    assert Path(out / "soft" / f"{UID}_f0003.png").is_file()


def test_reader_libraries_are_imported_only_when_a_file_needs_them():
    import subprocess
    import sys

    code = (
        "import sys, wavegms.data.images, wavegms.inference.folder_items\n"
        "assert not {'pydicom', 'nibabel'} & set(sys.modules), 'imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_8_bit_dicom_frame_is_segmented_like_the_same_png(tmp_path, segmenter):
    from wavegms.core.files import write_png
    from wavegms.inference.folder import segment_folder

    src = tmp_path / "in"
    pixels = np.random.default_rng(3).integers(0, 256, (2, 30, 26)).astype(np.uint8)
    src.mkdir()
    write_dicom(src / "cine.dcm", pixels, uid=UID)
    write_png(src / "frame2.png", pixels[1])
    report = segment_folder(segmenter, src, tmp_path / "out")
    assert report.written == 3 and not report.skipped
    soft = tmp_path / "out" / "soft"
    np.testing.assert_array_equal(
        read_image(soft / f"{UID}_f0002.png"), read_image(soft / "frame2.png")
    )


def test_a_nifti_image_pairs_with_its_mask_by_name(tmp_path: Path) -> None:
    """``a.nii.gz`` is named ``a`` (not ``a.nii``), so it pairs with the mask ``a.png``."""
    from wavegms.core.files import write_png
    from wavegms.data.pairs import find_pairs

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    write_nifti(tmp_path / "images" / "a.nii.gz", np.zeros((8, 8, 1), np.uint8), (1.0, 1.0, 1.0))
    write_png(tmp_path / "masks" / "a.png", np.zeros((8, 8), np.uint8))
    pairs = find_pairs(tmp_path / "images", tmp_path / "masks")
    assert [(p.name, p.image.name) for p in pairs] == [("a", "a.nii.gz")]
