"""Small DICOM and NIfTI files written by the tests themselves (pydicom, nibabel)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    uid: str = "1.2.826.0.1.3680043.2.1125.1",
    window: tuple[float, float] | None = None,
    rescale: tuple[float, float] | None = None,
    spacing: tuple[float, float] | None = None,
    spacing_tag: str = "PixelSpacing",
    **attributes,
) -> Path:
    """An uncompressed DICOM file: ``pixels`` (H, W) or a multi-frame (N, H, W) uint16, or
    (H, W, 3) uint8 for colour ``photometric``; extra ``attributes`` set by keyword."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, uid
    ds.Modality = "OT"
    colour = photometric not in ("MONOCHROME1", "MONOCHROME2")
    frames = pixels.ndim == (4 if colour else 3)
    if frames:
        ds.NumberOfFrames = pixels.shape[0]
    ds.Rows, ds.Columns = pixels.shape[1:3] if frames else pixels.shape[:2]
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if spacing is not None:
        setattr(ds, spacing_tag, list(spacing))
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_nifti(path: Path, volume: np.ndarray, zooms: tuple[float, ...]) -> Path:
    """A NIfTI-1 file of ``volume`` with voxel sizes ``zooms`` in mm (affine from them)."""
    import nibabel as nib

    affine = np.diag([*zooms, *[1.0] * (3 - len(zooms)), 1.0])
    image = nib.Nifti1Image(volume, affine)
    image.header.set_zooms(zooms)
    image.header.set_xyzt_units("mm")
    nib.save(image, path)
    return path
