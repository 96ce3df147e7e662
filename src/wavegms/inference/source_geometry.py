"""Masks in the geometry of the file they were made from, so that 3D Slicer, OHIF and PACS
open them in place over their image:

* a NIfTI image or volume -> a NIfTI mask of the same voxel grid, with the source's affine
  and header (its data type, scaling and description set for a label image);
* a DICOM image -> a DICOM SEG (highdicom) that references the source instance (and its
  frames), one segment per label.

pydicom, nibabel and highdicom come with the ``clinical`` extra; they are imported only here
and in the readers, and a missing one is one line naming the extra (:func:`require_extra`).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wavegms.core.errors import InputError, OutputExistsError, WaveGMSError
from wavegms.core.files import atomic_write
from wavegms.data.clinical import clinical_kind, format_suffix

#: what ``--format`` may name: the PNG masks, NIfTI masks of NIfTI inputs, DICOM SEGs of
#: DICOM inputs
FORMATS = ("png", "nifti", "dcm")

#: the property a segment names (SNOMED CT): a lesion, a morphologically abnormal structure
SEGMENT_LABEL = "lesion"

#: patient and study attributes a SEG copies that DICOM allows to be empty (type 2); files
#: anonymised by removing them are given them empty, in memory only
_TYPE2 = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
    "StudyID", "AccessionNumber", "ReferringPhysicianName",
)  # fmt: skip


def parse_formats(text: str) -> tuple[str, ...]:
    """``"png,nifti"`` -> ``("png", "nifti")``; an unknown name is one-line InputError."""
    names = tuple(dict.fromkeys(p.strip().lower() for p in str(text).split(",") if p.strip()))
    aliases = {"nii": "nifti", "dicom": "dcm", "seg": "dcm"}
    names = tuple(aliases.get(n, n) for n in names)
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise InputError(f"--format takes a list of {', '.join(FORMATS)}, not {text!r}")
    return names


def require_extra(paths: Sequence[Path], formats: Sequence[str] = FORMATS) -> None:
    """Refuse, in one line naming the ``clinical`` extra, DICOM or NIfTI inputs when the
    libraries that read them (or write their outputs in ``formats``) are not installed."""
    kinds = {clinical_kind(p, sniff=True) for p in paths} - {None}
    needed = {"dicom": ["pydicom"], "nifti": ["nibabel"]}
    modules = [m for kind in sorted(kinds) for m in needed[kind]]
    if "dicom" in kinds and "dcm" in formats:
        modules.append("highdicom")
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            what = " and ".join(sorted(k.upper() if k == "nifti" else "DICOM" for k in kinds))
            raise InputError(
                f"{what} files need {module}, which is not installed: "
                "pip install 'napari-wavegms[clinical]'"
            ) from None


def _refuse_existing(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists; choose another folder or overwrite")


def _label_dtype(labels: np.ndarray) -> type:
    return np.uint8 if int(labels.max(initial=0)) <= 255 else np.uint16


def write_nifti_mask(source: Path, labels: np.ndarray, out: Path, overwrite: bool = False) -> Path:
    """``labels`` (H x W for a 2D image, H x W x Z for a volume: slice ``k`` is voxel
    ``data[:, :, k]``, as :mod:`wavegms.data.nifti` reads it) as a NIfTI file on the source's
    grid: same affine (qform and sform), same header, unscaled integer labels."""
    import nibabel as nib

    _refuse_existing(out, overwrite)
    src = nib.load(source)
    shape = tuple(int(n) for n in src.shape)
    while len(shape) > len(labels.shape) and shape[-1] == 1:
        shape = shape[:-1]  # trailing axes of length 1, as the reader drops them
    if tuple(labels.shape) != shape:
        raise InputError(f"{source.name}: a mask of shape {labels.shape} does not fit {shape}")
    header = src.header.copy()
    image = type(src)(labels.astype(_label_dtype(labels)), src.affine, header=header)
    image.set_data_dtype(_label_dtype(labels))
    image.header.set_slope_inter(1.0, 0.0)  # a label is its stored value
    image.header["cal_min"], image.header["cal_max"] = 0, max(int(labels.max(initial=0)), 1)
    image.header["descrip"] = b"wavegms mask"
    qform, qcode = src.get_qform(coded=True)
    sform, scode = src.get_sform(coded=True)
    image.set_qform(qform, int(qcode))
    image.set_sform(sform, int(scode))
    return atomic_write(out, lambda tmp: nib.save(image, tmp), format_suffix(out))


def _segment(number: int, algorithm) -> object:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=f"{SEGMENT_LABEL} {number}",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Lesion,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
    )


def dicom_seg(source: Path, labels: np.ndarray, model: str = "Wave-GMS"):
    """A highdicom ``Segmentation`` of ``labels`` (H x W, or N x H x W for the N frames of a
    multi-frame source) referencing ``source``; one segment per label 1 .. max (at least
    one, so that an empty mask is still a SEG that says "nothing found")."""
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    from wavegms import __version__

    ds = pydicom.dcmread(source, stop_before_pixels=True)
    frames = int(ds.get("NumberOfFrames") or 1)
    planes = labels if labels.ndim == 3 else labels[None]
    if planes.shape != (frames, int(ds.Rows), int(ds.Columns)):
        raise InputError(f"{source.name}: a mask of shape {labels.shape} does not fit its frames")
    missing = [k for k in ("StudyInstanceUID", "SeriesInstanceUID") if k not in ds]
    if missing:
        raise InputError(f"{source.name} lacks {', '.join(missing)}, which a DICOM SEG must copy")
    for keyword in _TYPE2:  # required, but empty means unknown: never a made-up value
        if keyword not in ds:
            setattr(ds, keyword, "")
    algorithm = hd.AlgorithmIdentificationSequence(
        name=model, version=__version__, family=codes.cid7162.ArtificialIntelligence
    )
    count = max(int(planes.max(initial=0)), 1)
    seg = hd.seg.Segmentation(
        source_images=[ds],
        pixel_array=planes.astype(_label_dtype(planes)) if frames > 1 else planes[0],
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment(k, algorithm) for k in range(1, count + 1)],
        series_instance_uid=hd.UID(),
        series_number=int(ds.get("SeriesNumber") or 0) + 1000,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="napari-wavegms",
        manufacturer_model_name=model,
        software_versions=__version__,
        device_serial_number="none",
        series_description=f"{model} segmentation",
        omit_empty_frames=False,  # one SEG frame per source frame, found or not
    )
    # highdicom takes a file whose SOP class holds one frame (Secondary Capture) as one frame
    # whatever its Number of Frames says, and writes a SEG of its first frame only: never that
    if int(seg.NumberOfFrames) != frames * count:
        raise InputError(
            f"{source.name}: its {frames} frames cannot be referenced by a DICOM SEG (its SOP "
            f"class {ds.SOPClassUID.name} holds one frame); the PNG masks have every frame"
        )
    return seg


def write_dicom_seg(
    source: Path, labels: np.ndarray, out: Path, overwrite: bool = False, model: str = "Wave-GMS"
) -> Path:
    """:func:`dicom_seg` written atomically to ``out``; anything highdicom refuses (a source
    it cannot reference, such as a multi-frame image without a frame of reference) is one
    :class:`WaveGMSError` line."""
    _refuse_existing(out, overwrite)
    try:
        seg = dicom_seg(source, labels, model)
    except WaveGMSError:
        raise
    except Exception as exc:  # highdicom and pydicom raise many types
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise WaveGMSError(f"no DICOM SEG for {source.name}: {text}") from exc
    return atomic_write(out, lambda tmp: seg.save_as(tmp, enforce_file_format=True), ".dcm")
