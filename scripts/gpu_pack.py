"""Pack what a GPU training run needs into one folder that travels with the repository.

    python scripts/gpu_pack.py                      # BUSI + Kvasir-SEG from $WAVEGMS_DATA
    python scripts/gpu_pack.py --source busi=/data/busi --limit 8 --out gpu_pack_tiny

The lent GPU machine receives the working tree (at most 64 MiB) and nothing beside it: no
``../shared``, no network. The pack holds, in ``gpu_pack/`` (ignored by git):

- ``<dataset>/images``, ``<dataset>/masks``, ``<dataset>/split.json`` (a "train" list only):
  the training split of each dataset, already resized to the model size exactly as training
  resizes it (``load_pair``), so the trainer reads a 224 image and resizes nothing. Grey
  images and all masks are lossless PNG; colour images are JPEG (4:4:4, quality 95), because
  lossless colour PNGs of Kvasir-SEG alone would take about 60 MiB. Every packed image is read
  back through ``load_pair`` and compared with what training would have seen; the mean and
  maximum absolute difference of the JPEG images (0-255 levels) go into ``pack.json``; PNG
  images and masks must read back unchanged.
- ``wheels/``: manylinux wheels for Python 3.12 of the packages that machine lacks, at the
  versions tested here, checked against pyproject's requirements.

The test split never travels: the trainer carves its validation images from the training
names (same seed as always), so the pack needs nothing else.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from wavegms.core.errors import InputError, WaveGMSError
from wavegms.core.files import write_json
from wavegms.data.pairs import Pair, dataset_pairs, load_pair

REPO = Path(__file__).resolve().parents[1]

#: pack folder name -> folder name under $WAVEGMS_DATA
DATASETS = {"busi": "busi", "kvasir_seg": "kvasir_seg"}

#: packages the GPU machine lacks, pinned to the versions the test suite runs with here
WHEELS = {"ptwt": "1.0.1", "PyWavelets": "1.9.0", "platformdirs": "4.14.8"}

#: pip matches manylinux tags exactly, so name the ones these wheels are built for
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux2014_x86_64")

JPEG_QUALITY = 95

#: the most a JPEG image may change on average, in 0-255 levels; packing stops beyond it
#: (quality 95 without chroma subsampling changed Kvasir-SEG images by about 1.2 on average)
JPEG_MEAN_LIMIT = 3.0

#: the name of the manifest; a folder holding it was made by this script and may be replaced
MANIFEST = "pack.json"


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float [0, 1] HxWx3 -> uint8, rounded as the training set stores its images."""
    return np.round(image * 255.0).astype(np.uint8)


def is_grey(pixels: np.ndarray) -> bool:
    return bool(
        (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 0] == pixels[..., 2]).all()
    )


def save_image(pixels: np.ndarray, stem: Path, jpeg_quality: int) -> Path:
    """Grey images as one-channel PNG (lossless), colour as JPEG without chroma subsampling."""
    if is_grey(pixels):
        path = stem.with_suffix(".png")
        Image.fromarray(pixels[..., 0]).save(path, "PNG", optimize=True)
    else:
        path = stem.with_suffix(".jpg")
        Image.fromarray(pixels).save(path, "JPEG", quality=jpeg_quality, subsampling=0)
    return path


def pack_dataset(
    source: Path, target: Path, size: int, jpeg_quality: int, limit: int | None = None
) -> dict:
    """Pack the "train" split of ``source`` into ``target``; returns its manifest entry."""
    pairs = dataset_pairs(source, split="train")[:limit]
    (target / "images").mkdir(parents=True)
    (target / "masks").mkdir()
    lossy, diffs, worst = 0, [], 0
    for pair in pairs:
        image, mask = load_pair(pair, size)
        pixels = to_uint8(image)
        image_path = save_image(pixels, target / "images" / pair.name, jpeg_quality)
        mask_path = target / "masks" / f"{pair.name}.png"
        Image.fromarray(mask.astype(np.uint8) * 255).save(mask_path, "PNG", optimize=True)
        # Read back exactly as training will, and measure what the compression changed.
        back, back_mask = load_pair(Pair(pair.name, image_path, mask_path), size)
        if not np.array_equal(back_mask, mask):
            raise WaveGMSError(f"packed mask of {pair.name} does not read back unchanged")
        diff = np.abs(to_uint8(back).astype(np.int16) - pixels)
        if image_path.suffix == ".png":
            if diff.any():
                raise WaveGMSError(f"packed image of {pair.name} does not read back unchanged")
            continue
        if diff.mean() > JPEG_MEAN_LIMIT:
            raise WaveGMSError(
                f"packed image of {pair.name} differs by {diff.mean():.1f} levels on average "
                f"(limit {JPEG_MEAN_LIMIT}); raise --jpeg-quality"
            )
        lossy += 1
        diffs.append(float(diff.mean()))
        worst = max(worst, int(diff.max()))
    write_json(target / "split.json", {"train": [p.name for p in pairs]})
    return {
        "source": str(source),
        "train_pairs": len(pairs),
        "jpeg_images": lossy,
        "png_images": len(pairs) - lossy,
        # over the JPEG images, in 0-255 levels (PNG images read back unchanged)
        "jpeg_mean_abs_diff": float(np.mean(diffs)) if diffs else 0.0,
        "jpeg_max_abs_diff": worst,
    }


def requirements() -> dict[str, str]:
    """pyproject's dependency specifiers by lower-case name, e.g. {"ptwt": ">=0.1.9"}."""
    import tomllib  # Python 3.11+, like this script (the package itself runs on 3.10)

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    out = {}
    for line in project["dependencies"]:
        name = line.split(";")[0].strip()
        cut = next((i for i, ch in enumerate(name) if ch in "<>=!~ "), len(name))
        out[name[:cut].lower()] = name[cut:].strip()
    return out


def download_wheels(target: Path) -> dict[str, str]:
    """pip-download the pinned wheels for CPython 3.12 on x86-64 Linux; check pyproject's
    requirements; return {file name: version}."""
    from packaging.specifiers import SpecifierSet

    wanted = requirements()
    for name, version in WHEELS.items():
        spec = wanted.get(name.lower(), "")
        if version not in SpecifierSet(spec):
            raise InputError(f"{name} {version} does not satisfy pyproject's {name}{spec}")
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    command = [
        *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
        *("--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp"),
        *platforms,
        *("-d", str(target)),
        *(f"{name}=={version}" for name, version in WHEELS.items()),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise WaveGMSError(f"pip download failed: {done.stderr.strip().splitlines()[-1:]}")
    return {w.name: w.name.split("-")[1] for w in sorted(target.glob("*.whl"))}


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def make_pack(
    out: Path,
    sources: dict[str, Path],
    *,
    size: int = 224,
    jpeg_quality: int = JPEG_QUALITY,
    limit: int | None = None,
    wheels: bool = True,
    replace: bool = False,
) -> dict:
    """Build the pack in a staging folder next to ``out`` and move it into place when whole,
    so an interrupted pack never looks finished. An existing ``out`` is replaced only when
    ``replace`` is set and it is a pack (holds ``pack.json``); other folders are never touched.
    """
    if out.exists():
        if not (out / MANIFEST).is_file():
            raise InputError(f"{out} exists and is not a pack made by this script; choose --out")
        if not replace:
            raise InputError(f"{out} already holds a pack; pass --replace to build it again")
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)  # a previous interrupted attempt
    staging.mkdir(parents=True)
    try:
        manifest: dict = {"image_size": size, "jpeg_quality": jpeg_quality, "datasets": {}}
        for name, source in sources.items():
            print(f"packing {name} from {source} ...", flush=True)
            entry = pack_dataset(source, staging / name, size, jpeg_quality, limit)
            manifest["datasets"][name] = entry
        manifest["wheels"] = download_wheels(staging / "wheels") if wheels else {}
        for name in manifest["datasets"]:
            manifest["datasets"][name]["bytes"] = folder_bytes(staging / name)
        manifest["bytes"] = folder_bytes(staging)
        write_json(staging / MANIFEST, manifest)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def default_sources() -> dict[str, Path]:
    data = Path(os.environ.get("WAVEGMS_DATA") or REPO.parent / "shared" / "data")
    return {name: data / folder for name, folder in DATASETS.items()}


def parse_source(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=FOLDER, got {text!r}")
    return name, Path(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "gpu_pack", help="the pack folder")
    parser.add_argument(
        "--source",
        type=parse_source,
        action="append",
        metavar="NAME=FOLDER",
        help="a dataset folder to pack as NAME (repeatable; default: BUSI and Kvasir-SEG "
        "from $WAVEGMS_DATA)",
    )
    parser.add_argument("--size", type=int, default=224, help="model image size")
    parser.add_argument("--jpeg-quality", type=int, default=JPEG_QUALITY)
    parser.add_argument("--limit", type=int, help="pack only the first N training pairs")
    parser.add_argument("--no-wheels", action="store_true", help="skip the pip download")
    parser.add_argument("--replace", action="store_true", help="rebuild an existing pack")
    args = parser.parse_args(argv)
    sources = dict(args.source) if args.source else default_sources()
    try:
        manifest = make_pack(
            args.out,
            sources,
            size=args.size,
            jpeg_quality=args.jpeg_quality,
            limit=args.limit,
            wheels=not args.no_wheels,
            replace=args.replace,
        )
    except WaveGMSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    mib = 1 << 20
    for name, entry in manifest["datasets"].items():
        print(
            f"{name}: {entry['train_pairs']} pairs ({entry['png_images']} PNG, "
            f"{entry['jpeg_images']} JPEG), {entry['bytes'] / mib:.1f} MiB; JPEG pixel difference "
            f"(0-255): mean {entry['jpeg_mean_abs_diff']:.2f}, max {entry['jpeg_max_abs_diff']}"
        )
    for wheel in manifest["wheels"]:
        print(f"wheel: {wheel}")
    print(f"pack {args.out}: {manifest['bytes'] / mib:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
