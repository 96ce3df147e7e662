"""The npe2 reader: DICOM and NIfTI open in napari at their physical scale, other files are
left to other readers; folders of such files are segmented from the batch panel."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from napari_helpers import wait_idle

from clinical_files import write_dicom, write_nifti
from wavegms.data.images import read_image
from wavegms.napari.batch import BatchWidget
from wavegms.napari.reader import get_reader

UID = "1.2.826.0.1.3680043.2.1125.9"


@pytest.fixture
def clinical(tmp_path):
    """A folder with a 3-frame DICOM (spacing 0.5 x 0.25 mm) and a NIfTI volume of 2 slices
    (voxels 0.5 x 0.8 x 2 mm)."""
    folder = tmp_path / "clinical"
    folder.mkdir()
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 4000, (3, 20, 24)).astype(np.uint16)
    dicom = write_dicom(
        folder / "cine.dcm", frames, uid=UID, window=(2000, 4000), spacing=(0.5, 0.25)
    )
    volume = rng.normal(size=(18, 22, 2)).astype(np.float32)
    nifti = write_nifti(folder / "vol.nii.gz", volume, (0.5, 0.8, 2.0))
    return folder, dicom, nifti


def test_reader_declines_other_files_without_reading_them(tmp_path):
    assert get_reader(str(tmp_path / "missing.png")) is None
    assert get_reader([str(tmp_path / "a.dcm"), str(tmp_path / "b.png")]) is None
    (tmp_path / "notes").write_text("no DICM marker here")
    assert get_reader(str(tmp_path / "notes")) is None
    # chosen by its name alone: the (missing) pixels are not read to decide
    assert get_reader(str(tmp_path / "missing.dcm")) is not None
    assert get_reader(str(tmp_path / "missing.nii.gz")) is not None


@pytest.mark.napari
def test_dicom_and_nifti_open_at_their_scale(make_napari_viewer, clinical):
    _, dicom, nifti = clinical
    viewer = make_napari_viewer()
    [cine] = viewer.open(str(dicom), plugin="napari-wavegms")
    assert cine.data.shape == (3, 20, 24)
    np.testing.assert_array_equal(cine.data, read_image(dicom))  # what is seen is segmented
    assert tuple(cine.scale) == (1.0, 0.5, 0.25)
    assert cine.metadata["spacing_mm"] == (0.5, 0.25)
    assert cine.metadata["sop_instance_uid"] == UID and cine.metadata["frames"] == 3
    [vol] = viewer.open(str(nifti), plugin="napari-wavegms")
    assert vol.data.shape == (2, 18, 22) and vol.name == "vol"
    np.testing.assert_allclose(vol.scale, (2.0, 0.5, 0.8))
    assert vol.metadata["frames"] == 2


def test_manifest_declares_the_reader():
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_distribution("napari-wavegms")
    [reader] = manifest.contributions.readers
    assert reader.command == "napari-wavegms.read_clinical"
    assert {"*.dcm", "*.nii", "*.nii.gz"} <= set(reader.filename_patterns)


def test_single_frame_layer_is_2d_with_its_spacing(tmp_path):
    pixels = np.array([[0, 100, 200], [40, 99, 250]], np.uint16)
    path = write_dicom(
        tmp_path / "cr.dcm", pixels, photometric="MONOCHROME1", window=(100, 101),
        spacing=(0.15, 0.2), spacing_tag="ImagerPixelSpacing",
    )  # fmt: skip
    [(data, kwargs, kind)] = get_reader(str(path))(str(path))
    assert kind == "image" and data.shape == (2, 3) and kwargs["rgb"] is False
    assert kwargs["scale"] == [0.15, 0.2] and kwargs["contrast_limits"] == (0.0, 1.0)
    assert data[0, 0] == 1.0 and data[0, 2] == 0.0  # MONOCHROME1: shown inverted
    assert kwargs["metadata"]["frames"] == 1


@pytest.mark.napari
def test_batch_panel_segments_frames_and_slices(make_napari_viewer, tiny_model, qtbot, clinical):
    folder, _, _ = clinical
    out = folder.parent / "out"
    widget = BatchWidget(make_napari_viewer())
    widget.input_dir.value, widget.output_dir.value = folder, out
    widget.model.value = "tiny"
    widget.run_button.native.click()
    wait_idle(qtbot, widget)
    assert widget.status.value.startswith("done: 5 of 5 image(s) written"), widget.status.value
    names = sorted(p.stem for p in (out / "masks").glob("*.png"))
    assert names == [f"{UID}_f0001", f"{UID}_f0002", f"{UID}_f0003", "vol_z0000", "vol_z0001"]
    with open(out / "results.csv", newline="") as f:
        rows = {row["name"]: row for row in csv.DictReader(f)}
    assert float(rows["vol_z0001"]["row_spacing_mm"]) == 0.5
    assert float(rows["vol_z0001"]["col_spacing_mm"]) == pytest.approx(0.8)
