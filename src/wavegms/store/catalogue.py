"""Models by name: the ones shipped inside the package and the ones the user trained.

Shipped models live in ``wavegms/weights/`` and are read-only; the user's live in the user
data directory (``paths.user_models_dir``). A model name follows :data:`NAME_RULE` and maps to
exactly ``<name>.safetensors`` + ``<name>.json`` in one of those two folders, never the
current working folder; a file elsewhere is given as a path (with a ``/`` or a suffix).

Torch-free: listing models, reading and checking their JSON configs, resolving names and
refusing pickles happen when a napari widget opens, on the GUI thread. Weights are read and
written by ``store.model_files`` (torch), which this module never imports.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple

from wavegms.core.errors import InputError, ModelFileError

SHIPPED_DIR = Path(__file__).parent.parent / "weights"
DEFAULT_MODEL = "busi"
FORMAT = "wavegms-model"
FORMAT_VERSION = 1
#: suffixes of pickle-based files (torch.save, joblib, Lightning): loading one runs code
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".joblib")
#: model names: what a name may hold, so that it is one file name on every system
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
NAME_RULE = "letters, digits, - and _, 1-64 characters, starting with a letter or digit"
#: endings of model files: a string ending so is a path, never a name
MODEL_SUFFIXES = (".safetensors", ".json")


def check_model_name(name: str) -> str:
    """``name`` if it follows :data:`NAME_RULE`; otherwise :class:`InputError` stating it."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InputError(f"{name!r} is not a usable model name: {NAME_RULE} (no dots)")
    return name


def is_model_path(name_or_path: str | Path) -> bool:
    """A path is given as a path: it holds a folder separator or ends in a model suffix;
    anything else is a model name."""
    text = str(name_or_path)
    return "/" in text or "\\" in text or text.lower().endswith(MODEL_SUFFIXES)


def refuse_pickle(path: str | Path) -> None:
    """Raise :class:`ModelFileError` for a pickle-based file, without opening it."""
    p = Path(path)
    if p.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelFileError(
            f"{p} is a pickle-based file ({p.suffix}); it is not loaded, because unpickling "
            "can run any code hidden in the file. napari-wavegms reads only its own model "
            "files: <name>.safetensors beside <name>.json"
        )


def model_paths(path: str | Path) -> tuple[Path, Path]:
    """``x``, ``x.safetensors`` or ``x.json`` -> (weights path, config path)."""
    p = Path(path)
    if p.suffix in MODEL_SUFFIXES:
        p = p.with_suffix("")
    if not p.name or p.name in (".", ".."):
        raise ModelFileError(f"{str(path)!r} names a folder, not a model file")
    # Suffixes are appended, not swapped: ``busi.v2`` must not become ``busi.safetensors``.
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def read_config(path: str | Path) -> dict:
    refuse_pickle(path)
    _, config_path = model_paths(path)
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ModelFileError(f"model config {config_path} not found") from err
    except (OSError, ValueError) as err:  # ValueError: not UTF-8 text
        raise ModelFileError(f"cannot read model config {config_path}: {err}") from err
    try:
        config = json.loads(text)
    except ValueError as err:
        raise ModelFileError(f"model config {config_path} is not valid JSON: {err}") from err
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFileError(f"{config_path} is not a Wave-GMS model config")
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{config_path} has format version {version}; this napari-wavegms reads up to "
            f"{FORMAT_VERSION}. Update napari-wavegms to use it."
        )
    return config


def model_section(config: dict, config_path: Path) -> dict:
    """A config's ``model`` section, its sizes checked (positive whole numbers, the image size
    a multiple of 8); ``model_files`` checks its keys and backend when it builds the model."""
    section = config.get("model")
    if not isinstance(section, dict):
        raise ModelFileError(f"{config_path}: bad model section: {section!r} is not an object")
    problems = []
    for key in ("latent_channels", "image_size"):
        value = section.get(key, 1)  # missing: the model's default
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f"{key} must be a positive whole number, not {value!r}")
    size = section.get("image_size", 8)
    if not problems and size % 8:
        problems.append(f"image_size must be a multiple of 8, not {size}")
    if problems:
        raise ModelFileError(f"{config_path}: bad model section: {'; '.join(problems)}")
    return section


def _models_in(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    # A model is complete once its JSON is beside its weights (the JSON is written last).
    # Files whose stem breaks the name rule are no model names (they load by path).
    return {
        p.stem: p
        for p in sorted(folder.glob("*.safetensors"))
        if p.with_suffix(".json").is_file() and NAME_PATTERN.fullmatch(p.stem)
    }


def shipped_models() -> dict[str, Path]:
    return _models_in(SHIPPED_DIR)


def user_models() -> dict[str, Path]:
    from wavegms.store.paths import user_models_dir

    return _models_in(user_models_dir())


def list_models() -> dict[str, Path]:
    """Every model by name, shipped first; a user model cannot shadow a shipped name."""
    shipped = shipped_models()
    return {**shipped, **{k: v for k, v in user_models().items() if k not in shipped}}


def default_model() -> str | None:
    models = list_models()
    if DEFAULT_MODEL in models:
        return DEFAULT_MODEL
    return next(iter(models), None)


#: The model box mode runs on the crops when none is named: trained on crops cut as box mode
#: cuts them (docs/performance.md "Box prompts").
DEFAULT_BOX_MODEL = "busi-box"

#: what ``--whole-model`` takes for "no whole-image model": the crops' soft masks alone
NO_WHOLE = "none"


def default_box_model() -> str | None:
    """The model for box prompts when the user names none: the crop-aware one if installed."""
    return DEFAULT_BOX_MODEL if DEFAULT_BOX_MODEL in list_models() else default_model()


class BoxModels(NamedTuple):
    """Box mode's models: the one that segments each box's crop, and the one (if any) whose
    whole-image soft mask each crop's is averaged with."""

    crops: str | None
    whole: str | None


def box_models(model: str | None = None, whole: str | None = None) -> BoxModels:
    """Which models box mode runs. Nothing named and busi-box installed: busi-box's crops
    averaged with the default model's (busi's) whole image, where busi is installed. Why: on
    the 52 BUSI validation images (never trained on) that pair scored 82.54 DSC against 81.21
    for busi-box's crops alone, 81.38 averaged with busi-box's own whole image and 74.22 for
    busi on the whole image (docs/performance.md "Box prompts"); with the busi shipped
    since, 82.15 against 81.21, 81.38 and 77.19. A ``model`` the user names
    segments the crops alone, since nothing was measured for its pairing, unless ``whole``
    names a whole-image model too; ``whole`` = :data:`NO_WHOLE` turns the partner off."""
    if model is None:
        crops = default_box_model()
        models = list_models()
        paired = crops == DEFAULT_BOX_MODEL and DEFAULT_MODEL in models
        partner = DEFAULT_MODEL if paired else None
    else:
        crops, partner = model, None
    if whole is not None:
        partner = None if whole == NO_WHOLE else whole
    return BoxModels(crops, partner)


def resolve_model(name_or_path: str | Path) -> Path:
    """A model name (shipped or user models only) or a path -> the weights path."""
    refuse_pickle(name_or_path)  # before any lookup: such a file is never opened
    if is_model_path(name_or_path):
        weights, config = model_paths(name_or_path)
        if weights.is_file() and config.is_file():
            return weights
        missing = weights if not weights.is_file() else config
        raise ModelFileError(f"no model at {str(name_or_path)!r}: {missing} does not exist")
    models = list_models()
    name = str(name_or_path)
    if name in models:
        return models[name]
    check_model_name(name)
    available = ", ".join(models) or "none yet (train one with `wavegms train`)"
    raise ModelFileError(
        f"no model named or at {name!r}; available: {available} (a model file elsewhere is "
        f"given as a path, e.g. ./{name}.safetensors)"
    )
