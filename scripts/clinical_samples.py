"""Write synthetic clinical files from the plugin's sample ultrasound (no patient data), to
show DICOM and NIfTI going through ``wavegms segment`` and napari:

    python scripts/clinical_samples.py /tmp/clinical
    wavegms segment /tmp/clinical /tmp/clinical_out --model busi
    napari /tmp/clinical/cine.dcm          # opens at 0.1 mm per pixel

Writes ``cine.dcm`` (4-frame 8-bit cine loop, spacing from an ultrasound region calibrated in
cm), ``mono1.dcm`` (one 16-bit MONOCHROME1 frame with a window and Pixel Spacing) and
``volume.nii.gz`` (3 slices along the last axis, voxels 0.1 x 0.1 x 1 mm); ``segment`` writes
a DICOM SEG of ``mono1.dcm`` and a NIfTI mask of ``volume.nii.gz`` beside the PNGs. Needs the
``clinical`` extra; the writers are the tests' own (``tests/clinical_files.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from clinical_files import write_dicom, write_nifti  # noqa: E402
from wavegms.data.images import read_image  # noqa: E402
from wavegms.napari.sample import SAMPLE_DIR  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the files into (created)")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    image = read_image(SAMPLE_DIR / "images" / "ultrasound.png")  # 256 x 256 uint8
    frames = np.stack([np.roll(image, 4 * k, axis=1) for k in range(4)])  # the probe moves
    region = Dataset()
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3  # cm
    region.PhysicalDeltaX = region.PhysicalDeltaY = 0.01  # 0.1 mm per pixel
    cine_uid = generate_uid(entropy_srcs=["wavegms sample cine"])
    write_dicom(out / "cine.dcm", frames, uid=cine_uid, SequenceOfUltrasoundRegions=[region])
    # MONOCHROME1 stores the lesion bright: inverted on reading, it looks like the PNG again
    stored = (4095 - image.astype(np.uint16) * 16).astype(np.uint16)
    mono_uid = generate_uid(entropy_srcs=["wavegms sample mono1"])
    study = {  # what a DICOM SEG of it (``segment --format dcm``) refers to besides the instance
        "StudyInstanceUID": generate_uid(entropy_srcs=["wavegms sample study"]),
        "SeriesInstanceUID": generate_uid(entropy_srcs=["wavegms sample mono1 series"]),
        "PatientID": "SAMPLE",
    }
    write_dicom(
        out / "mono1.dcm", stored, uid=mono_uid, photometric="MONOCHROME1",
        window=(2048, 4096), spacing=(0.1, 0.1), **study,
    )  # fmt: skip
    volume = np.stack([np.roll(image, 6 * k, axis=0) for k in range(3)], axis=-1)
    write_nifti(out / "volume.nii.gz", volume.astype(np.float32), (0.1, 0.1, 1.0))
    print(f"wrote {out}/cine.dcm (SOP Instance UID {cine_uid}, 4 frames), mono1.dcm "
          f"({mono_uid}), volume.nii.gz (3 slices)")  # fmt: skip


if __name__ == "__main__":
    main()
