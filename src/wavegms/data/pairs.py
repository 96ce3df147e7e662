"""Image/mask folders, JSON splits and validation carving.

A dataset folder looks like ``<data_dir>/images``, ``<data_dir>/masks`` and
``<data_dir>/split.json``; images and masks share a file stem (their suffixes may differ).
Split files are JSON objects mapping a split name to a list of stems, e.g.
``{"train": ["benign_1", ...], "test": [...]}``. Pickled splits are never read: unpickling runs
code.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wavegms.core.errors import InputError
from wavegms.core.files import PathLike, read_json
from wavegms.data.clinical import file_stem, format_suffix
from wavegms.data.images import IMAGE_SUFFIXES, list_images, read_image
from wavegms.data.intensities import to_rgb01
from wavegms.data.masks import read_mask
from wavegms.data.preprocess import mask_to_model_size, model_input

#: how many names an error message lists before it says "and N more"
_SHOW = 10


def _repeated(names: Iterable[str]) -> list[str]:
    return sorted(n for n, k in Counter(names).items() if k > 1)


def _names_preview(names: Iterable[str]) -> str:
    names = list(names)
    shown = ", ".join(names[:_SHOW])
    return shown + (f" and {len(names) - _SHOW} more" if len(names) > _SHOW else "")


def _strip_suffix(name: str) -> str:
    """``"a.png"`` -> ``"a"``: split files sometimes hold file names instead of stems."""
    return file_stem(name) if format_suffix(name) in IMAGE_SUFFIXES else name


# ----------------------------------------------------------------------------------------- splits


def load_split(path: PathLike) -> dict[str, list[str]]:
    """Read a JSON split file: an object mapping split names to lists of image stems.

    A trailing image suffix on a name is removed. Raises :class:`InputError` for a file that is
    missing, not JSON, not of that shape, repeats a name within a split, or puts one name into
    two splits (which would leak test images into training).
    """
    p = Path(path)
    if p.suffix.lower() in (".pkl", ".pickle", ".p"):
        raise InputError(
            f"{p}: pickled split files are not read (loading a pickle runs code); "
            'convert it to JSON: {"train": [...], "test": [...]}'
        )
    data = read_json(p)
    if not isinstance(data, dict) or not data:
        raise InputError(
            f"{p}: a split file must be a JSON object mapping split names to lists of names, "
            'e.g. {"train": ["a", "b"], "test": ["c"]}'
        )
    splits: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for key, names in data.items():
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise InputError(f"{p}: split {key!r} must be a list of non-empty strings")
        stems = [_strip_suffix(n) for n in names]
        dupes = _repeated(stems)
        if dupes:
            raise InputError(f"{p}: split {key!r} lists names twice: {_names_preview(dupes)}")
        clash = [n for n in stems if n in seen]
        if clash:
            raise InputError(
                f"{p}: names in both split {seen[clash[0]]!r} and split {key!r}: "
                f"{_names_preview(clash)}"
            )
        seen.update(dict.fromkeys(stems, key))
        splits[str(key)] = stems
    return splits


def carve_validation(
    names: Sequence[str], fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """Split ``names`` into ``(train, validation)``, both sorted, deterministically.

    Each name is ranked by a SHA-256 hash of ``seed`` and the name, and the lowest
    ``round(fraction * n)`` (at least 1 when ``n >= 2``, at most ``n - 1``) go to validation.
    This depends neither on the input order, nor on any global RNG, nor on numpy/Python
    versions, and a name keeps its side when other names are added or removed.
    """
    if not 0.0 < float(fraction) < 1.0:
        raise InputError(f"validation fraction must lie strictly between 0 and 1, got {fraction}")
    unique = sorted(set(names))
    if len(unique) != len(names):
        dupes = _repeated(names)
        raise InputError(f"names listed twice: {_names_preview(dupes)}")
    n = len(unique)
    if n < 2:
        return unique, []
    n_val = min(max(1, round(fraction * n)), n - 1)

    def rank(name: str) -> bytes:
        return hashlib.sha256(f"{int(seed)}\0{name}".encode()).digest()

    val = set(sorted(unique, key=rank)[:n_val])
    return [x for x in unique if x not in val], [x for x in unique if x in val]


# ------------------------------------------------------------------------------------------ pairs


@dataclass(frozen=True)
class Pair:
    """One image file and its mask file, matched by stem ``name``."""

    name: str
    image: Path
    mask: Path


def _by_stem(folder: Path, what: str) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for f in list_images(folder):
        stem = file_stem(f)
        if stem in files:
            raise InputError(
                f"two {what} files share the name {stem!r} in {folder}: "
                f"{files[stem].name} and {f.name}"
            )
        files[stem] = f
    return files


def find_pairs(
    images_dir: PathLike, masks_dir: PathLike, names: Sequence[str] | None = None
) -> list[Pair]:
    """Match images and masks by file stem (suffixes may differ, e.g. ``a.jpg`` / ``a.png``).

    Without ``names`` every image must have a mask and vice versa; pairs come sorted by name.
    With ``names`` only those stems are used, in the given order, and every one must have both
    files. Mismatches raise :class:`InputError` listing the names concerned.
    """
    images = _by_stem(Path(images_dir), "image")
    masks = _by_stem(Path(masks_dir), "mask")
    if names is None:
        no_mask = sorted(set(images) - set(masks))
        no_image = sorted(set(masks) - set(images))
        if no_mask or no_image:
            parts = [f"{len(images)} images in {images_dir}, {len(masks)} masks in {masks_dir}"]
            if no_mask:
                parts.append(f"{len(no_mask)} images have no mask: {_names_preview(no_mask)}")
            if no_image:
                parts.append(f"{len(no_image)} masks have no image: {_names_preview(no_image)}")
            raise InputError(
                "images and masks do not match (by file name stem): " + "; ".join(parts)
            )
        if not images:
            raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {images_dir}")
        selected = sorted(images)
    else:
        selected = [_strip_suffix(n) for n in names]
        dupes = _repeated(selected)
        if dupes:
            raise InputError(f"names listed twice: {_names_preview(dupes)}")
        no_image = [n for n in selected if n not in images]
        no_mask = [n for n in selected if n not in masks]
        if no_image or no_mask:
            parts = []
            if no_image:
                parts.append(
                    f"{len(no_image)} have no image in {images_dir}: {_names_preview(no_image)}"
                )
            if no_mask:
                parts.append(
                    f"{len(no_mask)} have no mask in {masks_dir}: {_names_preview(no_mask)}"
                )
            raise InputError(f"of {len(selected)} names asked for, " + "; ".join(parts))
    return [Pair(n, images[n], masks[n]) for n in selected]


def dataset_pairs(
    data_dir: PathLike, split_file: PathLike | None = None, split: str | None = "train"
) -> list[Pair]:
    """The pairs of one split of a dataset folder (``images/``, ``masks/``, ``split.json``).

    ``split_file`` defaults to ``<data_dir>/split.json``. ``split=None`` returns every pair of
    the folder and needs no split file.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError(f"dataset folder {root} does not exist")
    for sub in ("images", "masks"):
        if not (root / sub).is_dir():
            raise InputError(f"dataset folder {root} has no '{sub}' subfolder")
    if split is None:
        return find_pairs(root / "images", root / "masks")
    splits = load_split(Path(split_file) if split_file is not None else root / "split.json")
    if split not in splits:
        raise InputError(f"split {split!r} is not in the split file; it has {sorted(splits)}")
    return find_pairs(root / "images", root / "masks", splits[split])


def load_pair(pair: Pair, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load one pair: image float32 HxWx3 in [0,1] and mask bool HxW.

    With ``size``, both are brought to ``size x size`` exactly as inference and scoring bring
    them (:func:`~wavegms.data.preprocess.model_input` and
    :func:`~wavegms.data.preprocess.mask_to_model_size`), so training cannot drift from them.
    """
    raw = read_image(pair.image)
    mask = read_mask(pair.mask)
    if raw.shape[:2] != mask.shape:
        raise InputError(
            f"image {pair.image} is {raw.shape[1]}x{raw.shape[0]} (WxH) but its mask "
            f"{pair.mask} is {mask.shape[1]}x{mask.shape[0]}"
        )
    if size is None:
        return to_rgb01(raw), mask
    if int(size) < 1:
        raise InputError(f"size must be a positive number of pixels, got {size}")
    return model_input(raw, int(size)), mask_to_model_size(mask, int(size))
