"""Generate the plugin's sample data: a synthetic ultrasound-like image and its lesion mask.

Made from scratch (no patient data, nothing downloaded), so the project may ship it:

    python scripts/make_sample_data.py   # sample_data/images/ultrasound.png, masks/ultrasound.png

laid out like a dataset (``images/`` and ``masks/``, same file name), so that
``wavegms segment sample_data/images out`` segments the image only. (``sample_data`` is a link
to ``src/wavegms/package_data/sample_data``, the copy inside the package that napari's **Open
Sample**, the export and the int8 calibration read.)

The image is 256x256 uint8: Rayleigh-distributed speckle over a depth-dependent background
with a bright near-field band, a fan-shaped field of view, and a dark, blurry-edged elliptical
lesion with a slightly brighter rim below it (posterior enhancement), as in breast ultrasound.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

SIZE = 256
SEED = 20240607


def lesion_mask(size: int = SIZE) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    cy, cx, ry, rx, angle = 0.52 * size, 0.47 * size, 0.15 * size, 0.22 * size, np.deg2rad(12)
    y, x = yy - cy, xx - cx
    u = x * np.cos(angle) + y * np.sin(angle)
    v = -x * np.sin(angle) + y * np.cos(angle)
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0


def ultrasound_image(mask: np.ndarray, seed: int = SEED) -> np.ndarray:
    rng = np.random.default_rng(seed)
    size = mask.shape[0]
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    depth = yy / size
    tissue = 0.55 + 0.25 * np.exp(-(((depth - 0.12) / 0.06) ** 2)) - 0.25 * depth
    tissue += 0.08 * ndimage.gaussian_filter(rng.standard_normal((size, size)), 12) * 6
    lesion = ndimage.gaussian_filter(mask.astype(np.float64), 2.5)
    below = ndimage.shift(lesion, (0.18 * size, 0), order=1) * (1 - lesion)
    echo = tissue * (1 - 0.7 * lesion) + 0.12 * below
    speckle = rng.rayleigh(scale=1.0, size=(size, size))
    speckle = ndimage.gaussian_filter(speckle, (0.8, 1.6))  # lateral resolution is coarser
    image = echo * speckle / speckle.mean()
    fan = np.abs(xx - size / 2) <= (0.3 + 0.2 * depth) * size
    image = np.where(fan, image, 0.0)
    return np.clip(image / np.percentile(image[fan], 99.5), 0, 1) * 255


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[1] / "src/wavegms/package_data/sample_data"
    parser.add_argument("--out", type=Path, default=default, help="output folder")
    args = parser.parse_args(argv)

    from wavegms.core.files import write_png

    mask = lesion_mask()
    image = ultrasound_image(mask).round().astype(np.uint8)
    image_path, mask_path = (
        args.out / "images" / "ultrasound.png",
        args.out / "masks" / "ultrasound.png",
    )
    write_png(image_path, image, overwrite=True)
    write_png(mask_path, mask, overwrite=True)
    print(f"wrote {image_path} and {mask_path}")


if __name__ == "__main__":
    main()
