"""Collected image/mask pairs (the fine-tune dock's and the review loop's), one folder per
project on disk.

``<data dir>/finetune/<project>/images/<name>.png``, ``masks/<name>.png`` and
``manifest.json`` (one entry per pair, in the order they were added). Every file is written
atomically as soon as a pair is added, so closing napari loses nothing. The folder is an
ordinary dataset folder for training (no split file: all pairs).

Every change of a project (add, put, remove, tidy, snapshot) holds the project's lock, so two
Accept clicks, or an Accept while a fine-tune copies the pairs, never see the folder half
changed: the manifest and the files agree after each. A fine-tune trains on a
:meth:`TrainingSet.snapshot`, never on the folder the user keeps adding to.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import threading
import time
import warnings
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from wavegms.core.errors import InputError, MaskWarning, WaveGMSError
from wavegms.core.files import read_json, write_json, write_png
from wavegms.data.intensities import to_rgb01
from wavegms.data.masks import binarise_mask, merged_labels_message
from wavegms.store.paths import data_dir

MANIFEST = "manifest.json"
#: One lock per project folder in this process, owned by the TrainingSets of that folder (each
#: holds it as ``lock``): weak values, so a project that no one has open holds no lock.
_LOCKS: weakref.WeakValueDictionary[Path, threading.RLock] = weakref.WeakValueDictionary()
_LOCKS_GUARD = threading.Lock()


def project_lock(root: Path) -> threading.RLock:
    """The lock of one project folder: the same object for every caller while any of them
    keeps it, a new one once none does (no one can hold a lock that no one keeps)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(root.resolve())
        if lock is None:
            lock = _LOCKS[root.resolve()] = threading.RLock()
        return lock


def projects_dir() -> Path:
    return data_dir() / "finetune"


def safe_name(text: str) -> str:
    """A file-name-safe version of a layer or project name."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")
    return name or "image"


@dataclass(frozen=True)
class Entry:
    name: str
    source: str  # the image layer it came from
    height: int
    width: int
    mask_area: int
    added: str
    image_digest: str = ""  # of the pixels, to notice the same image added twice
    mask_digest: str = ""


def pixels_digest(array: np.ndarray) -> str:
    data = np.ascontiguousarray(array)
    head = f"{data.shape}{data.dtype}".encode()
    return hashlib.blake2b(head + data.view(np.uint8).tobytes(), digest_size=12).hexdigest()


def foreground(labels: np.ndarray, what: str) -> np.ndarray:
    """A labels plane as a bool mask: integer labels > 0 (several different labels are merged,
    with a :class:`~wavegms.core.errors.MaskWarning`), anything else by ``binarise_mask``."""
    if not np.issubdtype(labels.dtype, np.integer):
        return binarise_mask(labels, what)
    mask = labels > 0
    values = np.unique(labels[mask])
    if len(values) > 1:
        warnings.warn(merged_labels_message(values, what), MaskWarning, stacklevel=3)
    return mask


class TrainingSet:
    """The pairs of one fine-tuning project."""

    def __init__(self, project: str) -> None:
        if not project or safe_name(project) != project:
            raise InputError(f"{project!r} is not a usable project name (letters, digits, - and _)")
        self.project = project
        self.root = projects_dir() / project
        self.lock = project_lock(self.root)

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def masks_dir(self) -> Path:
        return self.root / "masks"

    def entries(self) -> list[Entry]:
        path = self.root / MANIFEST
        if not path.is_file():
            return []
        try:
            raw = read_json(path)
            return [Entry(**item) for item in raw["pairs"]]
        except (WaveGMSError, KeyError, TypeError) as err:
            raise InputError(f"the training set manifest {path} is damaged: {err}") from err

    def names(self) -> list[str]:
        return [e.name for e in self.entries()]

    def _write_manifest(self, entries: list[Entry]) -> None:
        data = {"project": self.project, "pairs": [asdict(e) for e in entries]}
        write_json(self.root / MANIFEST, data)

    def _new_name(self, source: str, taken: set[str]) -> str:
        base = safe_name(source)
        for i in range(1, 100_000):
            name = f"{base}_{i:03d}"
            if name not in taken and not (self.images_dir / f"{name}.png").exists():
                return name
        raise InputError(f"too many pairs named after {source!r}")

    def add(self, image: np.ndarray, labels: np.ndarray, source: str) -> Entry:
        """Add one 2D image (HxW or HxWxC) and its labels (HxW, any label > 0 is foreground)."""
        rgb, mask = self._checked_pair(image, labels, source)
        with self.lock:
            return self._add(image, rgb, mask, source)

    def _checked_pair(
        self, image: np.ndarray, labels: np.ndarray, source: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """The image as RGB in [0, 1] and the labels as a bool mask, their sizes checked."""
        image, labels = np.asarray(image), np.asarray(labels)
        if labels.ndim != 2:
            raise InputError(f"the labels must be one 2D plane, got shape {labels.shape}")
        if image.shape[:2] != labels.shape:
            raise InputError(
                f"the labels ({labels.shape[0]}x{labels.shape[1]}) and the image "
                f"({image.shape[0]}x{image.shape[1]}) differ in size; pick the labels drawn "
                "on this image"
            )
        return to_rgb01(image), foreground(labels, f"the labels drawn on {source!r}")

    def _add(self, image: np.ndarray, rgb: np.ndarray, mask: np.ndarray, source: str) -> Entry:
        entries = self.entries()
        digests = pixels_digest(rgb), pixels_digest(mask)
        for e in entries:
            if (e.image_digest, e.mask_digest) == digests:
                raise InputError(
                    f"this image with these labels is already in the training set as "
                    f"{e.name!r}; not added twice (a pair counted twice weighs double)"
                )
            if e.image_digest == digests[0]:
                warnings.warn(
                    f"the same image is already in the training set as {e.name!r} with other "
                    "labels; remove that pair if this one is its correction",
                    MaskWarning, stacklevel=3,
                )  # fmt: skip
        if not mask.any():
            warnings.warn(
                f"the labels drawn on {source!r} are empty: this pair teaches the model that "
                "the image shows nothing to segment",
                MaskWarning, stacklevel=3,
            )  # fmt: skip
        name = self._new_name(source, {e.name for e in entries})
        files = self._write_files(name, image, rgb, mask)
        try:
            entry = self._entry(name, source, mask, digests)
            self._write_manifest([*entries, entry])
        except BaseException:
            # The pair exists only once the manifest lists it: leave no half of it behind
            # (the name was free under the lock: these files are this call's own).
            for path in files:
                path.unlink(missing_ok=True)
            raise
        return entry

    def _write_files(
        self, name: str, image: np.ndarray, rgb: np.ndarray, mask: np.ndarray
    ) -> list[Path]:
        colour = np.asarray(image).ndim == 3 and np.asarray(image).shape[-1] in (3, 4)
        files = [self.images_dir / f"{name}.png", self.masks_dir / f"{name}.png"]
        write_png(files[0], rgb if colour else rgb[..., 0], overwrite=True)
        write_png(files[1], mask, overwrite=True)
        return files

    @staticmethod
    def _entry(name: str, source: str, mask: np.ndarray, digests: tuple[str, str]) -> Entry:
        h, w = mask.shape
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        return Entry(name, source, int(h), int(w), int(mask.sum()), stamp, *digests)

    def put(self, key: str, image: np.ndarray, labels: np.ndarray) -> Entry:
        """The pair named after ``key`` (the review's image name), idempotent: the same
        pixels again change nothing; another mask replaces the pair's files in place (each
        atomically, the manifest last). Nothing is ever deleted."""
        rgb, mask = self._checked_pair(image, labels, key)
        name, digests = safe_name(key), (pixels_digest(rgb), pixels_digest(mask))
        with self.lock:
            entries = self.entries()
            index = next((i for i, e in enumerate(entries) if e.name == name), None)
            if index is None:
                self._write_files(name, image, rgb, mask)
                entry = self._entry(name, key, mask, digests)
                self._write_manifest([*entries, entry])
                return entry
            old = entries[index]
            if (old.image_digest, old.mask_digest) == digests:
                return old
            self._write_files(name, image, rgb, mask)
            entries[index] = self._entry(name, key, mask, digests)
            self._write_manifest(entries)
            return entries[index]

    def snapshot(self, names: list[str], dest: Path) -> Path:
        """Copy the pairs ``names`` into ``dest/images`` and ``dest/masks`` (a dataset folder
        for one fine-tune: later Accepts do not change what it trains on)."""
        with self.lock:
            listed = set(self.names())
            missing = [n for n in names if n not in listed]
            if missing:
                raise InputError(f"the training set {self.project!r} has no pair {missing[0]!r}")
            for folder in ("images", "masks"):
                (dest / folder).mkdir(parents=True, exist_ok=True)
                for file in (f"{name}.png" for name in names):
                    shutil.copyfile(self.root / folder / file, dest / folder / file)
        return dest

    def add_with_notes(
        self, image: np.ndarray, labels: np.ndarray, source: str
    ) -> tuple[Entry, list[str]]:
        """:meth:`add`, returning the messages of the mask warnings it gives (e.g. labels
        merged) for a widget to show, instead of emitting them."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MaskWarning)
            entry = self.add(image, labels, source)
        notes = []
        for w in caught:
            if issubclass(w.category, MaskWarning):
                notes.append(str(w.message))
            else:  # other warnings go on as if they had not been caught
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return entry, notes

    def tidy(self) -> None:
        """Remove files the manifest does not list (left by an interrupted add)."""
        with self.lock:
            keep = {f"{name}.png" for name in self.names()}
            for folder in (self.images_dir, self.masks_dir):
                if folder.is_dir():
                    for path in folder.iterdir():
                        if path.is_file() and path.name not in keep:
                            path.unlink()

    def remove(self, names: list[str]) -> None:
        """Drop pairs by name: the manifest first, then their files."""
        drop = set(names)
        with self.lock:
            self._write_manifest([e for e in self.entries() if e.name not in drop])
            for name in drop:
                for folder in (self.images_dir, self.masks_dir):
                    (folder / f"{name}.png").unlink(missing_ok=True)
