"""What the user chose in the widgets, kept between sessions in ``<data dir>/settings.json``.

One JSON object with a section per form. Each section is one dataclass; unknown keys and
values of the wrong type are ignored, so an old or hand-edited file never breaks a widget.
The forms save their section when the user has finished editing a field (see
``fields.on_edit_finished``), not on every keystroke.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from wavegms.core.errors import WaveGMSError
from wavegms.core.files import read_json, write_json
from wavegms.runtime.backends import PRECISIONS
from wavegms.store.paths import data_dir
from wavegms.training.finetune import FinetuneRequest

T = TypeVar("T")


@dataclass
class SegmentChoices:
    """What the Segment dock's fields were left at (not how segmenting runs: that is
    ``inference.folder.SegmentSettings``, the one set of run settings)."""

    SECTION: ClassVar[str] = "segment"
    CHOICES: ClassVar[dict[str, tuple]] = {"precision": PRECISIONS}
    model: str = ""
    device: str = "auto"
    threshold: float = 0.5
    soft_mask: bool = False
    precision: str = "fp32"  # exact; "int8" only when the user picks it


def blank_request() -> FinetuneRequest:
    """The library's defaults, with no data, base model or new name chosen yet."""
    return FinetuneRequest(data_dir="", base_model="", new_name="")


@dataclass
class FinetuneSettings:
    SECTION: ClassVar[str] = "finetune"
    project: str = "default"
    # The fine-tune form's fields are FinetuneRequest's (one list of them, one set of defaults).
    request: FinetuneRequest = field(default_factory=blank_request)


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


def _usable(settings: Any, name: str, value: Any) -> bool:
    """Whether a saved ``value`` fits the field: its type, and one of the field's choices
    where the dataclass lists them (``CHOICES``), so a hand-edited file picks nothing else."""
    choices = getattr(settings, "CHOICES", {}).get(name)
    if choices is not None and value not in choices:
        return False
    return _same_type(getattr(settings, name), value)


def _fill(settings: Any, saved: dict) -> None:
    """Copy the usable values of ``saved`` into the dataclass ``settings``."""
    for f in dataclasses.fields(settings):
        default = getattr(settings, f.name)
        if dataclasses.is_dataclass(default):
            inner = saved.get(f.name)
            # Older files kept a nested section's values flat, beside the others.
            _fill(default, inner if isinstance(inner, dict) else saved)
        elif f.name in saved and _usable(settings, f.name, saved[f.name]):
            value = saved[f.name]
            setattr(settings, f.name, float(value) if isinstance(default, float) else value)


def load_settings(cls: type[T]) -> T:
    """The saved section for ``cls``, with defaults for anything missing or unusable."""
    saved = _read_all().get(cls.SECTION)  # type: ignore[attr-defined]
    settings = cls()
    if isinstance(saved, dict):
        _fill(settings, saved)
    return settings


def save_settings(settings: Any) -> None:
    """Replace one section of the settings file (atomic write); failures are not fatal."""
    data = _read_all()
    data[settings.SECTION] = dataclasses.asdict(settings)
    # Settings are a convenience: a read-only data folder must not break segmentation.
    with contextlib.suppress(OSError, WaveGMSError):
        write_json(settings_path(), data)
