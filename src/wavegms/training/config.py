"""What a training run depends on: ``TrainConfig``, checked field by field, and its YAML form.

Every setting is checked for its type and, for numbers, a range, so that a typo in a YAML file
(``epochs: ten``, ``lr: 2e3``) stops the run at once with one line naming the setting instead
of failing deep inside torch minutes later.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from wavegms.core.errors import InputError
from wavegms.data.box_geometry import DEFAULT_MARGIN
from wavegms.net.autoencoders import BACKENDS
from wavegms.net.lmm import SUPERVISED_HEADS
from wavegms.store.paths import runs_dir
from wavegms.training.augment import AugmentConfig

# (kind, lowest, highest) of every numeric setting; None in a field's value means "not set"
# and is allowed where the field's default is None.
_NUMBERS: dict[str, tuple[type, float, float]] = {
    "val_fraction": (float, 0.0, 1.0),  # exclusive at both ends, checked below
    "image_size": (int, 8, 4096),
    "epochs": (int, 1, 1_000_000),
    "batch_size": (int, 1, 65_536),
    "lr": (float, 1e-9, 10.0),
    "weight_decay": (float, 0.0, 10.0),
    "warmup_epochs": (int, 0, 1_000_000),
    "seed": (int, 0, 2**63 - 1),
    "seg_every": (int, 1, 1_000_000),
    "cached_views": (int, 0, 1024),
    "align_weight": (float, 0.0, 1000.0),
    "ema_decay": (float, 0.0, 0.99999),  # 0: no average (exclusive of 1, checked below)
    "checkpoint_every": (int, 1, 1_000_000),
    "val_every": (int, 1, 1_000_000),
    "max_batches_per_epoch": (int, 1, 1_000_000_000),
    "time_budget_s": (float, 1e-3, 366 * 86_400.0),
    "box_crops": (float, 0.0, 1.0),
    "box_jitter": (int, 0, 100_000),
    "low_res_size": (int, 16, 4096),  # a multiple of 16 below image_size, checked below
    "low_res_epochs": (int, 0, 1_000_000),
}
_TEXTS = ("data_dir", "name", "backend", "device")
_OPTIONAL_TEXTS = ("out_dir", "split_file", "split", "backend_path", "init_model")
_FLAGS = ("amp", "augment", "cpu_bf16", "cpu_bf16_ewave", "budget_cpu")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass
class TrainConfig:
    """Everything a run depends on. Loaded from YAML (``configs/*.yaml``) or built in code."""

    data_dir: str
    name: str = "wavegms"
    out_dir: str | None = None  # default: <user data dir>/runs/<name>
    split_file: str | None = None  # default: <data_dir>/split.json if present, else all pairs
    split: str | None = "train"  # None: every pair of the folder, no split file needed
    val_fraction: float = 0.1
    image_size: int = 224
    backend: str = "taef2"
    backend_path: str | None = None
    init_model: str | None = None  # fine-tune from this model (name or path)
    epochs: int = 100
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_epochs: int = 5
    seed: int = 2333
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA; ignored elsewhere
    # bf16 autocast for the frozen autoencoder (the targets' encodes, the decoded Dice heads) on
    # a CPU with bf16 units (detected at run time): training.precision
    cpu_bf16: bool = False
    # the same for the trainable E_wave and LMM (weights and optimiser stay fp32; the wavelet
    # transform runs in fp32 inside it)
    cpu_bf16_ewave: bool = False
    # the frozen autoencoder's weights in NHWC (channels_last) memory layout, so its convolutions
    # run on oneDNN's NHWC kernels (1.2-1.3x on this CPU); the same function, other rounding
    channels_last: bool = False
    augment: bool = True
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)
    seg_heads: tuple[str, ...] = SUPERVISED_HEADS  # heads decoded for the Dice loss
    seg_every: int = 1  # decode for the Dice loss every N-th batch (the decoder dominates CPU cost)
    # CPU schedule: >0 precomputes the frozen encoder's targets for this many views of each
    # training image once (view 0 unaugmented, the rest augmented) and samples a view per
    # image per epoch, instead of encoding every augmented batch twice.
    cached_views: int = 0
    align_weight: float = 1.0
    # > 0: validate, select and ship an exponential moving average of the weights
    # (training.ema), updated after every step with this decay
    ema_decay: float = 0.0
    checkpoint_every: int = 1
    # validate every N-th epoch and always the last (only validated epochs can be kept as the
    # best); the validation decodes through the frozen decoder, a fine-tune's dearest part
    val_every: int = 1
    max_batches_per_epoch: int | None = None  # cap for smoke tests and short schedules
    # Wall-clock budget, counted from the start of train(): once the first epochs are timed
    # the run fixes its number of epochs (at most ``epochs``) to what fits, and the cosine
    # runs over those. A resumed run keeps that number; one resumed before it was fixed
    # times its own first epochs against the whole budget again.
    time_budget_s: float | None = None
    # count the budget in this process's CPU-seconds, not wall seconds: equal-budget learning
    # curves stay fair when other work shares the machine
    budget_cpu: bool = False
    # Crop-and-rescale augmentation (training.box_crops), for box mode: the share of the
    # augmented cached views (views 1..) that are crops around the lesion as box mode cuts
    # them: the mask's box grown by 0..box_jitter px per side, a margin drawn from
    # box_margins (shares of the box per side). Needs cached_views >= 2.
    box_crops: float = 0.0
    box_jitter: int = 20
    box_margins: tuple[float, float] = (DEFAULT_MARGIN, DEFAULT_MARGIN)
    # Progressive resizing (training.progressive), a CPU economy: the first low_res_epochs
    # epochs train at low_res_size (images, masks and frozen targets), the rest at image_size.
    # Validation, the best model and inference stay at image_size.
    low_res_size: int | None = None
    low_res_epochs: int = 0

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> TrainConfig:
        """Read a YAML mapping of settings; ``overrides`` that are not None replace them."""
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise InputError(f"cannot read training config {path}: {err}") from err
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise InputError(
                f"training config {path} must be a mapping of settings (key: value lines), "
                f"not a {type(raw).__name__}"
            )
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in set(raw) - known)
        if unknown:
            raise InputError(f"unknown training setting(s): {', '.join(unknown)}")
        if "data_dir" not in raw:
            raise InputError("the training config needs data_dir (the dataset folder)")
        raw = dict(raw)
        for name, (kind, _, _) in _NUMBERS.items():
            # YAML 1.1 reads "2e-3" (no dot) as text; take it as the number it plainly is
            if kind is float and isinstance(raw.get(name), str):
                raw[name] = _float_or_text(raw[name])
        if isinstance(raw.get("augmentation"), dict):
            raw["augmentation"] = _augmentation(raw["augmentation"])
        if "seg_heads" in raw and (raw["seg_heads"] is None or isinstance(raw["seg_heads"], list)):
            raw["seg_heads"] = tuple(raw["seg_heads"] or ())
        if isinstance(raw.get("box_margins"), list):
            raw["box_margins"] = tuple(raw["box_margins"])
        config = cls(**raw)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise :class:`InputError` (one line, naming the setting) for any bad value."""
        for name in _TEXTS:
            _check_text(name, getattr(self, name), optional=False)
        for name in _OPTIONAL_TEXTS:
            _check_text(name, getattr(self, name), optional=True)
        for name in _FLAGS:
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{name} must be true or false, not {getattr(self, name)!r}")
        for name, (kind, low, high) in _NUMBERS.items():
            _check_number(name, getattr(self, name), kind, low, high)
        if self.backend not in BACKENDS:
            raise InputError(f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if not 0 < self.val_fraction < 1:
            raise InputError(f"val_fraction must be between 0 and 1, not {self.val_fraction}")
        if self.image_size % 8:
            raise InputError(f"image_size must be a multiple of 8, not {self.image_size}")
        if not isinstance(self.augmentation, AugmentConfig):
            raise InputError("augmentation must be a mapping of augmentation settings")
        heads = self.seg_heads
        if not isinstance(heads, tuple) or not all(isinstance(h, str) for h in heads):
            raise InputError(f"seg_heads must be a list of head names, not {heads!r}")
        bad = set(heads) - set(SUPERVISED_HEADS)
        if bad:
            raise InputError(f"seg_heads must be among {SUPERVISED_HEADS}, not {sorted(bad)}")
        if self.val_every > 1 and self.time_budget_s is not None:
            # a budget may end the run after any epoch, which then would not be validated
            raise InputError("val_every above 1 needs a fixed number of epochs, not time_budget_s")
        self._validate_box_crops()
        self._validate_low_res()

    def _validate_low_res(self) -> None:
        size = self.low_res_size
        # 16: the wavelet encoder halves the image three times and the autoencoder works at
        # 1/8; a multiple of 16 keeps every level even (a latent of 2 x 2 at the least)
        if size is not None and (size % 16 or size >= self.image_size):
            raise InputError(
                f"low_res_size must be a multiple of 16 below image_size ({self.image_size}), "
                f"not {size}"
            )
        if self.low_res_epochs > 0 and size is None:
            raise InputError("low_res_epochs needs low_res_size (the size of those epochs)")

    def _validate_box_crops(self) -> None:
        margins = self.box_margins
        if not isinstance(margins, tuple) or len(margins) != 2:
            raise InputError(f"box_margins must be two numbers [low, high], not {margins!r}")
        for value in margins:
            _check_number("box_margins", value, float, 0.0, 10.0)
        if margins[0] > margins[1]:
            raise InputError(f"box_margins must be [low, high] with low <= high, not {margins}")
        if self.box_crops > 0 and self.cached_views < 2:
            raise InputError(
                "box_crops needs cached_views >= 2: crops are made for the augmented cached "
                f"views (view 0 stays the whole image), not with cached_views {self.cached_views}"
            )

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["seg_heads"] = list(self.seg_heads)
        d["box_margins"] = list(self.box_margins)
        return d

    def run_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir else runs_dir() / self.name


def parse_duration(text: str) -> float:
    """``"90s"``, ``"8m"``, ``"1.5h"`` or plain seconds (``"300"``) -> seconds (> 0)."""
    match = _DURATION.match(str(text))
    seconds = float(match[1]) * _UNIT_SECONDS[match[2].lower()] if match else 0.0
    if not seconds > 0:
        raise InputError(
            f"time budget {text!r} is not a positive duration such as 90s, 8m, 1.5h or 300"
        )
    return seconds


def _float_or_text(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text  # validate() names the setting and the text


def _augmentation(raw: dict) -> AugmentConfig:
    known = {f.name for f in dataclasses.fields(AugmentConfig)}
    unknown = sorted(str(k) for k in set(raw) - known)
    if unknown:
        raise InputError(f"unknown augmentation setting(s): {', '.join(unknown)}")
    for name, value in raw.items():
        _check_number(f"augmentation setting {name}", value, float, 0.0, math.inf)
    return AugmentConfig(**raw)


def _check_text(name: str, value: object, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise InputError(f"{name} must be a non-empty text, not {value!r}")


def _check_number(name: str, value: object, kind: type, low: float, high: float) -> None:
    if value is None and name in _NULLABLE:
        return
    # bool is an int in Python, but "epochs: yes" is a mistake, not 1 epoch
    whole = isinstance(value, int) and not isinstance(value, bool)
    if kind is int and not whole:
        raise InputError(f"{name} must be a whole number, not {value!r}")
    if kind is float and not (whole or isinstance(value, float)):
        raise InputError(f"{name} must be a number, not {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        raise InputError(f"{name} must lie between {low:g} and {high:g}, not {value!r}")


_NULLABLE = {
    f.name for f in dataclasses.fields(TrainConfig) if f.default is None and f.name in _NUMBERS
}
