"""What the user chose in the widgets, kept between sessions in ``<data dir>/settings.json``.

One JSON object with a section per widget. Each section is a dataclass; unknown keys and
values of the wrong type are ignored, so an old or hand-edited file never breaks a widget.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from wavegms.core.errors import WaveGMSError
from wavegms.core.files import read_json, write_json
from wavegms.store.paths import data_dir
from wavegms.training.finetune import FinetuneRequest

T = TypeVar("T")


@dataclass
class SegmentSettings:
    SECTION: ClassVar[str] = "segment"
    model: str = ""
    device: str = "auto"
    threshold: float = 0.5
    soft_mask: bool = False


@dataclass
class FinetuneSettings:
    SECTION: ClassVar[str] = "finetune"
    project: str = "default"
    base_model: str = ""
    device: str = "auto"
    # The dock starts from the library's defaults (one place to change them).
    epochs: int = FinetuneRequest.epochs
    lr: float = FinetuneRequest.lr
    batch_size: int = FinetuneRequest.batch_size
    val_fraction: float = FinetuneRequest.val_fraction
    augment: bool = FinetuneRequest.augment
    fast_cpu: bool = FinetuneRequest.fast_cpu


@dataclass
class BatchSettings:
    SECTION: ClassVar[str] = "batch"
    input_dir: str = ""
    output_dir: str = ""
    gt_dir: str = ""
    model: str = ""
    device: str = "auto"
    threshold: float = 0.5


def settings_path() -> Path:
    return data_dir() / "settings.json"


def _read_all() -> dict[str, Any]:
    path = settings_path()
    if not path.is_file():
        return {}
    try:
        data = read_json(path)
    except WaveGMSError:
        return {}
    return data if isinstance(data, dict) else {}


def _same_type(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def load_settings(cls: type[T]) -> T:
    """The saved section for ``cls``, with defaults for anything missing or unusable."""
    saved = _read_all().get(cls.SECTION)  # type: ignore[attr-defined]
    settings = cls()
    if not isinstance(saved, dict):
        return settings
    for f in dataclasses.fields(settings):  # type: ignore[arg-type]
        if f.name in saved and _same_type(getattr(settings, f.name), saved[f.name]):
            value = saved[f.name]
            setattr(settings, f.name, float(value) if isinstance(f.default, float) else value)
    return settings


def save_settings(settings: Any) -> None:
    """Replace one section of the settings file (atomic write); failures are not fatal."""
    data = _read_all()
    data[settings.SECTION] = dataclasses.asdict(settings)
    # Settings are a convenience: a read-only data folder must not break segmentation.
    with contextlib.suppress(OSError, WaveGMSError):
        write_json(settings_path(), data)
