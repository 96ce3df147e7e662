"""Masks in their source's geometry: NIfTI masks and DICOM SEGs, read back and compared."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from clinical_files import write_dicom, write_nifti
from wavegms.core.errors import InputError, OutputExistsError, WaveGMSError
from wavegms.inference.source_geometry import (
    parse_formats,
    require_extra,
    write_dicom_seg,
    write_nifti_mask,
)

SOURCE_UID = "1.2.826.0.1.3680043.2.1125.77"


def patient(**more) -> dict:
    """The patient/study attributes of a real file (the test writer leaves them out)."""
    return dict(StudyInstanceUID="1.2.826.0.1.3680043.2.1125.70",
                SeriesInstanceUID="1.2.826.0.1.3680043.2.1125.71", PatientID="P1",
                SeriesNumber=3, **more)  # fmt: skip


def test_a_nifti_mask_keeps_the_sources_affine_header_and_grid(tmp_path):
    import nibabel as nib

    source = write_nifti(tmp_path / "v.nii.gz", np.random.rand(12, 10, 3).astype(np.float32),
                         (0.5, 0.7, 2.0))  # fmt: skip
    image = nib.load(source)
    turned = image.affine.copy()
    turned[:3, :3] = turned[:3, :3] @ np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]])
    turned[:3, 3] = (10.0, -20.0, 5.5)
    image.set_sform(turned, 2)
    image.set_qform(turned, 1)
    image.header["scl_slope"], image.header["scl_inter"] = 2.0, 7.0  # must not scale labels
    nib.save(image, source)
    labels = np.zeros((12, 10, 3), np.uint8)
    labels[2:5, 3:7, 1] = 1
    labels[8:10, 1:3, 2] = 2
    out = write_nifti_mask(source, labels, tmp_path / "out" / "v.nii.gz")
    back = nib.load(out)
    np.testing.assert_allclose(back.affine, turned)
    np.testing.assert_allclose(back.get_sform(), turned)
    assert int(back.header["sform_code"]) == 2 and int(back.header["qform_code"]) == 1
    assert back.header.get_zooms() == image.header.get_zooms()
    assert back.header.get_xyzt_units() == image.header.get_xyzt_units() == ("mm", "unknown")
    assert back.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(back.dataobj), labels)  # slope/inter applied
    with pytest.raises(OutputExistsError):
        write_nifti_mask(source, labels, out)
    with pytest.raises(InputError, match="does not fit"):
        write_nifti_mask(source, labels[..., :2], tmp_path / "out" / "w.nii.gz")


def test_a_2d_nifti_gives_a_2d_mask(tmp_path):
    import nibabel as nib

    source = write_nifti(tmp_path / "a.nii", np.random.rand(9, 11).astype(np.float32),
                         (0.3, 0.4))  # fmt: skip
    labels = (np.arange(99).reshape(9, 11) % 3 == 0).astype(np.uint8)
    back = nib.load(write_nifti_mask(source, labels, tmp_path / "o" / "a.nii"))
    np.testing.assert_array_equal(np.asarray(back.dataobj), labels)
    np.testing.assert_allclose(back.affine, nib.load(source).affine)


def test_a_dicom_seg_references_its_source_and_holds_the_labels(tmp_path):
    import highdicom as hd
    import pydicom

    source = write_dicom(tmp_path / "ct.dcm", np.zeros((20, 30), np.uint16), uid=SOURCE_UID,
                         spacing=(0.4, 0.6), **patient(SliceThickness=2.0))  # fmt: skip
    labels = np.zeros((20, 30), np.uint8)
    labels[2:5, 3:9] = 1
    labels[10:12, 10:20] = 2
    out = write_dicom_seg(source, labels, tmp_path / "o" / "ct_seg.dcm", model="Wave-GMS busi")
    raw = pydicom.dcmread(out)
    assert raw.Modality == "SEG" and raw.StudyInstanceUID == patient()["StudyInstanceUID"]
    (series,) = raw.ReferencedSeriesSequence
    assert series.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == SOURCE_UID
    assert [s.SegmentLabel for s in raw.SegmentSequence] == ["lesion 1", "lesion 2"]
    seg = hd.seg.segread(out)
    assert [uid for *_, uid in seg.get_source_image_uids()] == [SOURCE_UID]
    pixels = seg.get_pixels_by_source_instance([SOURCE_UID], combine_segments=True)
    np.testing.assert_array_equal(pixels[0], labels)
    shared = raw.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert [float(v) for v in shared.PixelSpacing] == [0.4, 0.6]


def test_an_ultrasound_seg_without_slice_thickness_reads_back_with_pydicom(tmp_path):
    import pydicom

    source = write_dicom(tmp_path / "us.dcm", np.zeros((16, 12), np.uint16), uid=SOURCE_UID,
                         spacing=(0.1, 0.1), **patient())  # fmt: skip
    labels = np.zeros((16, 12), np.uint8)
    labels[4:9, 2:6] = 1
    raw = pydicom.dcmread(write_dicom_seg(source, labels, tmp_path / "us_seg.dcm"))
    frame = raw.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0]
    assert frame.SourceImageSequence[0].ReferencedSOPInstanceUID == SOURCE_UID
    np.testing.assert_array_equal(raw.pixel_array, labels)
    # an empty mask is still a SEG: one segment, one frame of zeros
    empty = pydicom.dcmread(write_dicom_seg(source, labels * 0, tmp_path / "e_seg.dcm"))
    assert len(empty.SegmentSequence) == 1 and not empty.pixel_array.any()


def test_sources_a_seg_cannot_reference_are_one_line_errors(tmp_path):
    frames = np.zeros((3, 8, 8), np.uint16)
    cine = write_dicom(tmp_path / "cine.dcm", frames, SOPClassUID="1.2.840.10008.5.1.4.1.1.7.3",
                       **patient())  # fmt: skip
    with pytest.raises(WaveGMSError, match=r"no DICOM SEG for cine\.dcm") as err:
        write_dicom_seg(cine, frames.astype(np.uint8), tmp_path / "c.dcm")
    assert "\n" not in str(err.value) and not (tmp_path / "c.dcm").exists()
    # a Secondary Capture with several frames: highdicom would write a SEG of frame 1 only
    capture = write_dicom(tmp_path / "capture.dcm", frames, **patient())
    with pytest.raises(InputError, match=r"its 3 frames cannot be referenced"):
        write_dicom_seg(capture, frames.astype(np.uint8), tmp_path / "s.dcm")
    assert not (tmp_path / "s.dcm").exists()
    bare = write_dicom(tmp_path / "bare.dcm", frames[0])  # no study: nothing to attach to
    with pytest.raises(InputError, match="lacks StudyInstanceUID, SeriesInstanceUID"):
        write_dicom_seg(bare, np.zeros((8, 8), np.uint8), tmp_path / "b.dcm")
    with pytest.raises(InputError, match="does not fit"):
        write_dicom_seg(bare, np.zeros((7, 8), np.uint8), tmp_path / "b.dcm")


def test_a_missing_library_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    paths = [tmp_path / "a.dcm", tmp_path / "b.png"]
    require_extra(paths)  # installed here: no error
    monkeypatch.setitem(sys.modules, "highdicom", None)  # as if not installed
    require_extra(paths, ("png",))  # not needed without DICOM SEG output
    with pytest.raises(InputError, match=r"highdicom.*napari-wavegms\[clinical\]"):
        require_extra(paths)
    monkeypatch.setitem(sys.modules, "nibabel", None)
    with pytest.raises(InputError, match=r"NIFTI files need nibabel.*\[clinical\]"):
        require_extra([tmp_path / "v.nii.gz"])
    require_extra([tmp_path / "b.png"])  # PNG needs neither


def test_format_names():
    assert parse_formats("png, NIfTI,dicom") == ("png", "nifti", "dcm")
    with pytest.raises(InputError, match="--format"):
        parse_formats("png,jpeg")
