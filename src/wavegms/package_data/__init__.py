"""Data files that travel inside the package (and so inside the wheel): the shipped models'
cards and the synthetic sample image with its mask (no patient data), which is also the
default calibration and export example. Read through :mod:`importlib.resources`, never from a
repository checkout, so an installed wheel behaves as the clone does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

#: The name of the one sample image (``sample_data/images/`` and ``sample_data/masks/``).
SAMPLE_NAME = "ultrasound.png"


def _root() -> Traversable:
    return resources.files(__name__)


def model_card(name: str) -> str | None:
    """The card of the shipped model ``name`` (Markdown), or None if it has none."""
    card = _root() / "model_cards" / f"{name}.md"
    return card.read_text(encoding="utf-8") if card.is_file() else None


def sample_file(kind: str = "images", name: str = SAMPLE_NAME) -> Traversable:
    """A file of the sample data: ``kind`` ``"images"`` or ``"masks"``."""
    return _root() / "sample_data" / kind / name


def sample_image_files() -> list[Traversable]:
    """Every bundled sample image, sorted by name."""
    folder = _root() / "sample_data" / "images"
    return sorted((f for f in folder.iterdir() if f.name.endswith(".png")), key=lambda f: f.name)


@contextlib.contextmanager
def as_path(resource: Traversable) -> Iterator[Path]:
    """A real file path for ``resource`` while the block runs (a temporary copy only where
    the package is not plain files, e.g. a zip import)."""
    with resources.as_file(resource) as path:
        yield Path(path)
